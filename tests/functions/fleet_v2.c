/* fleet_v2.c - the new version of fleet_v1.c for test_haproxy.py's rolling deploy:
 * the same function, answering "fleet v2\n". */
#define FLEET_VERSION "v2"
#include "fleet_v1.c"
