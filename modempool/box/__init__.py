"""Running modempool on a real Linux box: port ownership, discovery, udev, doctor, systemd."""
