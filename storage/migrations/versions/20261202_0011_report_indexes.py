"""report indexes: a period's tickets, resolutions, clocks and ratings found by time, not by a full scan

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 12:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_tickets_created_at", "tickets", ["created_at"]),
    ("ix_tickets_resolved_at", "tickets", ["resolved_at"]),
    ("ix_timeline_at", "timeline", ["at"]),
    ("ix_sla_clocks_met", "sla_clocks", ["state", "met_at", "metric", "breached_at"]),
    ("ix_sla_clocks_state_due", "sla_clocks", ["state", "due_at"]),
    ("ix_sla_clocks_breached", "sla_clocks", ["breached_at"]),
    ("ix_surveys_rated", "surveys", ["rated_at"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
