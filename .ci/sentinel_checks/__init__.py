"""Microsoft's Azure-Sentinel pull-request validators, ported to Python and run on sentinel/.

Why under .ci/ and not sentinel/checks/: sentinel/ is exactly what a pull request would copy into
Azure-Sentinel's Solutions/<Name>/; code there would ship with the solution. The entries a pull
request adds to Microsoft's own lists (valid connector ids, KQL test tables and functions, the
WorkbooksMetadata entry, the ASIM tester's vendor list) live in pr_additions/, at the paths they
have in Azure-Sentinel, so they can be copied as they are and are visible in one place.

Each rule names its source file and the commit it was read at (sources.py); messages are
Microsoft's, word for word. `python -m sentinel_checks` (with .ci on PYTHONPATH) runs them all.
"""
