from common.data.migrations import run_migrations
from orders.models import Base

run_migrations(Base.metadata)
