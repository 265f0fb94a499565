"""`python -m router.migrate`: apply router's database migrations and exit (`--check` only lists
what is pending). Deployments run it as a Job and set ROUTER_MIGRATE_ON_START=false."""

from ccshared.migrate import main
from router.settings import RouterSettings

if __name__ == "__main__":
    raise SystemExit(main(RouterSettings, "router"))
