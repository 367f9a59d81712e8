/*
 * uk_registry.c - the ordered table of card drivers, and uk_tokens_start.
 *
 * When a card appears, the token layer calls probe() of each driver in this
 * order on the reader's worker; the first that answers UK_OK opens the card.
 * A probe has no side effects (at most a SELECT), so a driver that says
 * "not mine" leaves the card as it found it for the next one.
 *
 * Order, most specific first:
 *   1. Drivers that recognise a card by something only it has (an ATR, a
 *      proprietary application) come first: many vendor tokens also carry a
 *      PIV application as a compatibility layer, and the vendor's own
 *      driver knows the card better (its containers, its SM2 support).
 *      There is none yet.
 *   2. piv (NIST SP 800-73-4 over PC/SC, with the common vendor extensions):
 *      the generic, standard application. Its probe is a SELECT by AID that
 *      other cards answer with 6A82, so it is safe to try on any card and
 *      it belongs after every driver that is more specific.
 * p11 and skf come first, but they are not card drivers: they accept only the
 * cards of PKCS#11 module slots (p11/) and SKF devices (skf/), which answer
 * uk_card_transmit with NOT_SUPPORTED, and refuse every other card without
 * I/O, so their place changes nothing for the others and keeps module cards
 * away from APDU drivers. A card reachable both ways (OpenSC over PC/SC) is listed once:
 * see dedup() in uk_tokens.c.
 */
#include <stddef.h>

#include "uk_token.h"
#include "uk_token_internal.h"

#include "uk_p11.h"
#include "uk_piv.h"
#include "uk_skf.h"

static const uk_driver *const drivers[] = {
    &uk_driver_p11,
    &uk_driver_skf,
    &uk_driver_piv,
};

const uk_driver *const *uk__drivers(size_t *n)
{
    *n = sizeof(drivers) / sizeof(drivers[0]);
    return drivers;
}

int uk_tokens_start(const uk_tokens_options *opt, uk_tokens **out)
{
    size_t n = 0;
    const uk_driver *const *d = uk__drivers(&n);
    return uk__tokens_start_with(opt, d, n, out);
}
