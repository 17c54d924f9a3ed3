/* top.h - `edgevisorctl top`: the live view of /status (top.c). */
#ifndef EV_CTL_TOP_H
#define EV_CTL_TOP_H

/* ARGV: the words after "top" (ARGC of them). Returns the exit status: 0 quit, 1
 * error, 2 usage, 128 + N ended by signal N (the terminal restored in every case). */
int cmd_top(int argc, char **argv);

#endif
