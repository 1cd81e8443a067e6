# Python toolchain and the real servers the unit/integration tests talk to.
apt_install python3-venv redis-server prometheus prometheus-alertmanager
# Debian's redis-server package may start a system instance; tests start their own on free ports.
# prometheus-alertmanager gives alertmanager + amtool (scripts/test-observability.sh, live alert tests).
