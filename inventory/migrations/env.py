from common.data.migrations import run_migrations
from inventory.models import Base

run_migrations(Base.metadata)
