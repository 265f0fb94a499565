"""`python -m intake.migrate`: apply intake's database migrations and exit (`--check` only lists
what is pending). Deployments run it as a Job and set INTAKE_MIGRATE_ON_START=false."""

from ccshared.migrate import main
from intake.settings import IntakeSettings

if __name__ == "__main__":
    raise SystemExit(main(IntakeSettings, "intake"))
