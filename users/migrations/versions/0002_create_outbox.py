"""create outbox

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

"""
from alembic import op

from common.data.migrations import create_outbox_table, drop_outbox_table

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_outbox_table(op)


def downgrade() -> None:
    drop_outbox_table(op)
