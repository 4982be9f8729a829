"""Datanets: contributing (with the checks that run first), curating, version manifests and copy audits.

The logic behind `datanet ...` commands lives here; ``cli/datanet_commands.py`` only parses and prints.
"""
