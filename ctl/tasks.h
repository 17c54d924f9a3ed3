/*
 * tasks.h - edgevisorctl's durable-task commands (tasks.c).
 */
#ifndef CTL_TASKS_H
#define CTL_TASKS_H

#include <stdbool.h>

/* Counts per kind and every task not done of function NAME; 0 or 1 (exit status). */
int cmd_tasks(const char *config, const char *name, bool json);
/* Re-drives dead task ID of function NAME; 0 or 1. */
int cmd_tasks_retry(const char *config, const char *name, const char *id);

#endif
