"""The Powertools Tracer of the Lambda handlers.

X-Ray (the template sets Tracing: Active); off outside Lambda, e.g. in the local
stack. A module of its own, imported by the handlers only: the X-Ray SDK (and the
botocore it loads) costs about a second to import, which the reindex's worker
processes (`infra.workers`, through `observability`) would pay at every start.
"""

from __future__ import annotations

from aws_lambda_powertools import Tracer

from catalog_sync.observability import SERVICE

tracer = Tracer(service=SERVICE)
