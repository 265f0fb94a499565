"""`python -m console.migrate`: apply the console's database migrations and exit (`--check` only
lists what is pending). Deployments run it as a Job and set CONSOLE_MIGRATE_ON_START=false."""

from ccshared.migrate import main
from console.settings import ConsoleSettings

if __name__ == "__main__":
    raise SystemExit(main(ConsoleSettings, "console"))
