"""The workstation's side of the device protocol: discovery, SSH transport, pull, deploy."""
