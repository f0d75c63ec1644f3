"""customers: blocks agents set, and the per-customer rate limit's window

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("blocked_until", "block_told", "burst_started_at", "burst_count", "burst_told")


def upgrade() -> None:
    op.add_column("customers", sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "customers", sa.Column("block_told", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("customers", sa.Column("burst_started_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("customers", sa.Column("burst_count", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "customers", sa.Column("burst_told", sa.Boolean(), server_default=sa.false(), nullable=False)
    )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        for column in COLUMNS:
            batch.drop_column(column)
