"""The report stage: ``summary`` reads what the stages wrote, ``html`` renders the page,
``write`` writes it and prints the terminal table."""
