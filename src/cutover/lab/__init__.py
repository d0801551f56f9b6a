"""The container lab: podman containers running systemd, one per inventory host."""
