"""Running a project beyond a terminal: a systemd unit (`p419 export systemd`, `p419 service ...`) and a
docker-compose.yml (`p419 export compose`, the inverse of `p419 init`).

What is written is a pure function of the project and explicit values (the platform, paths, the user);
only `service` runs anything (systemctl) and only the commands write files.
"""
