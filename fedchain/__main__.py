"""``python -m fedchain ...`` runs the fedchain CLI with this interpreter (the simulation
starts its participant processes this way)."""

from fedchain.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="fedchain")
