/* The controller's servers: Ck (its KM or, centralized, every KM, and the
 * CLI) and, distributed, Cx (the controllers of adjacent nodes). Every
 * handler runs in the server's callback: each takes the database lock for
 * in-memory work only, and the one long procedure (I.4b) is handed to the
 * order threads. */
#ifndef CTL_SERVE_H
#define CTL_SERVE_H

struct ctl;

int ctl_serve_start(struct ctl *c) __attribute__((warn_unused_result));
void ctl_serve_stop(struct ctl *c);

#endif
