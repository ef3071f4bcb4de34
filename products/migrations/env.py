from common.data.migrations import run_migrations
from products.models import Base

run_migrations(Base.metadata)
