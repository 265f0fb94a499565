"""`python -m sla.migrate`: apply sla's database migrations and exit (`--check` only lists
what is pending). Deployments run it as a Job and set SLA_MIGRATE_ON_START=false."""

from ccshared.migrate import main
from sla.settings import SLASettings

if __name__ == "__main__":
    raise SystemExit(main(SLASettings, "sla"))
