from catalog_sync.sync.state import ItemState, StateBucket, Status


def test_state_bucket_round_trips_through_its_encoding():
    bucket = StateBucket("products", 3, 7)
    bucket.records["A\x1fdefault"] = ItemState("h1", Status.SENT, sent_hash="h1")
    bucket.records["B\x1fdefault"] = ItemState(
        "h2", Status.FAILED, deleted=True, reason="bad price", attempts=2, sent_deleted=True
    )

    decoded = StateBucket.decode("products", 3, 7, bucket.encode())

    assert decoded.records == bucket.records
    assert decoded.counts()["failed"] == 1
    assert decoded.counts()["deleted"] == 1


def test_held_by_saas_follows_what_was_last_accepted():
    assert ItemState("h", Status.SENT, sent_hash="h").held_by_saas
    assert not ItemState("h", Status.PENDING).held_by_saas
    assert not ItemState(
        "t", Status.SENT, deleted=True, sent_hash="t", sent_deleted=True
    ).held_by_saas
    # deleted here, delete not yet accepted: the SaaS side still holds the live version
    assert ItemState("t", Status.PENDING, deleted=True, sent_hash="h").held_by_saas
