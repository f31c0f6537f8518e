"""The reports' definitions: periods, the rates with their numerators and denominators, the counts, the unit score
and the comparisons (环比, 同比). Pure: the store counts, this composes (docs/reports.md says the same in words)."""
