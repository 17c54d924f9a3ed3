/*
 * paths.h - the places the supervisor and edgevisorctl must agree on without being
 * told: a config without "admin", and edgevisorctl without -s, -c or
 * $EDGEVISOR_ADMIN, both mean this address (the systemd unit's RuntimeDirectory).
 */
#ifndef EV_PATHS_H
#define EV_PATHS_H

#define EV_ADMIN_DEFAULT "unix:/run/edgevisor/admin.sock"

#endif
