/* Runs a card behind vpcd until SIGTERM/SIGINT or the `quit` control
 * command. The caller keeps ownership of the card; its state is saved to
 * state_path after every command that changed it. */
#ifndef VPIV_RUN_H
#define VPIV_RUN_H

#include "vpiv.h"

typedef struct {
    const char *state_path;
    const char *host;
    int port;
    const char *control_path;
    unsigned latency_apdu_us;
    unsigned latency_byte_us;
} vpiv_run_options;

int vpiv_run(vpiv_card *card, const vpiv_run_options *opt);

#endif
