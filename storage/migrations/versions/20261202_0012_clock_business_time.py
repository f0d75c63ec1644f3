"""clock business time: each met clock keeps the business time it took, so reports rank stored durations

Reports measured every met clock of a period in business hours, row by row in Python (tens of thousands
for a month of a busy desk). The desk now keeps that duration on the clock when it is met
(`bot.standards.business_time`), and a report ranks the kept values (storage/report_queries.py). Clocks
met before this migration keep NULL here: business hours live in the policy, not the database, so
`relaydesk db upgrade` measures them after migrating (`report_queries.keep_durations`), and until then a
report whose period holds such a clock measures its clocks in Python as before. The met-clock index gains
the columns a report reads, so it reads no clock's row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ["state", "met_at", "metric", "breached_at"]
AFTER = [*BEFORE, "cycle", "business", "ticket_number"]


def upgrade() -> None:
    op.add_column("sla_clocks", sa.Column("business", sa.BigInteger(), nullable=True))
    op.drop_index("ix_sla_clocks_met", table_name="sla_clocks")
    op.create_index("ix_sla_clocks_met", "sla_clocks", AFTER)


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_met", table_name="sla_clocks")
    op.create_index("ix_sla_clocks_met", "sla_clocks", BEFORE)
    with op.batch_alter_table("sla_clocks") as batch:
        batch.drop_column("business")
