"""Analysis over plain step records: detectors, rules, paths."""
