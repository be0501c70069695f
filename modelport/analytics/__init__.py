"""Analysis over the data Modelport holds: datasets and their profiles, the pages that
explore them, and the monitoring of prediction records."""
