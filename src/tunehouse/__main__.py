from tunehouse.cli import entry

entry()
