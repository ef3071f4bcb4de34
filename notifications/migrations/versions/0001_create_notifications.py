"""customers and mails

Revision ID: 0001
Revises:
Create Date: 2026-12-06

"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
    )
    op.create_table(
        "mails",
        sa.Column("kind", sa.String(20), primary_key=True),
        sa.Column("about_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("message_id", sa.String(255), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("first_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_mails_unsent", "mails", ["sent_at", "refused_at", "first_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_mails_unsent", table_name="mails")
    op.drop_table("mails")
    op.drop_table("customers")
