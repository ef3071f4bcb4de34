from common.data.migrations import run_migrations
from notifications.models import Base

run_migrations(Base.metadata)
