"""`python -m feedback.migrate`: apply feedback's database migrations and exit (`--check` only lists
what is pending). Deployments run it as a Job and set FEEDBACK_MIGRATE_ON_START=false."""

from ccshared.migrate import main
from feedback.settings import FeedbackSettings

if __name__ == "__main__":
    raise SystemExit(main(FeedbackSettings, "feedback"))
