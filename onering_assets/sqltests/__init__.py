"""SQL unit tests: ``<table>.test.yml`` beside each declared table, run on scratch stores."""
