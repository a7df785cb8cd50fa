"""`python -m onering_assets.cli`, as the Airflow bridge's subprocess mode runs it."""

from onering_assets.cli import main

main()
