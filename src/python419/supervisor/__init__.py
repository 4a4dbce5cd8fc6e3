"""`p419 up`: plan -> manager loop -> processes -> printer.

The manager decides (start, restart, give up, stop in order) and emits events; the printer formats them; the
process layer is the only part that touches the OS. Each can be tested without the others.
"""
