"""Analysis over the data Modelport holds: monitoring of the prediction records."""
