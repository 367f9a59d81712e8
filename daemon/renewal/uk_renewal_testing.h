/*
 * uk_renewal_testing.h - a seam of the renewal service for its tests. Never called by ukeyd.
 *
 * The step hook runs (on the card's worker thread) after each step of prepare, commit, abort and
 * recovery is done (a card change, or a journal write: then step is the new state's name,
 * "written", "activated", ...), so a test can end the process exactly there (SIGKILL) and prove
 * that recovery finishes or rolls back the renewal and the key always signs.
 *
 * Thread: set it before the first operation; it is process-wide.
 */
#ifndef UK_RENEWAL_TESTING_H
#define UK_RENEWAL_TESTING_H

typedef void (*uk__renewal_step_hook)(void *ctx, const char *step);

/* fn NULL removes the hook. */
void uk__renewal_set_step_hook(uk__renewal_step_hook fn, void *ctx);

#endif
