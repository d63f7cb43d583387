"""The print tap: business days read from the Z report a register prints (docs/tap.md).

Pure core (no I/O): ``escpos`` (bytes → jobs → lines), ``amounts``, ``template`` (TOML →
``Template``), ``report`` (lines → ``ZReport`` or why it is not one), ``checks`` (does the
report add up), ``posting`` (a checked report → the same ``DayPlan`` the REGLINK path posts).
"""
