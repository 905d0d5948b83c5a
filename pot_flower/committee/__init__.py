"""The strategy's seam to the validators: protocol, embedded and remote committee."""
