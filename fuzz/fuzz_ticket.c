/*
 * fuzz_ticket.c -- mk__ticket_open() with the fixture's two ticket keys, at
 * the fixture's clock and at the ends of time. A ticket that opens is
 * sealed again and must open to the same state.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_fixture *f;
    mk_ticket_state st, st2;
    uint8_t t2[MK_TICKET_MAX];
    size_t n2 = 0;
    uint64_t now;
    int r;

    if (size > FZ_MAX_INPUT)
        return 0;
    f = fz_fixture_get();
    fz_reset(f);
    now = f->senv.now_ms;
    if (mk__ticket_open(f->sc, data, size, now, &st) == MK_OK) {
        static const uint8_t iv[MK_IV_LEN] = {1, 2, 3};
        if (size < 16 + 16 + 16 + 32 || size > MK_TICKET_MAX ||
            st.lifetime > MK_TICKET_LIFETIME_LIMIT)
            abort();
        if (mk__ticket_seal(f->sc, &st, iv, t2, sizeof t2, &n2) != MK_OK ||
            mk__ticket_open(f->sc, t2, n2, now, &st2) != MK_OK ||
            memcmp(st.key_id, st2.key_id, sizeof st.key_id) != 0 ||
            st.issued_ms != st2.issued_ms || st.auth_ms != st2.auth_ms ||
            st.auth_ms > st.issued_ms || st.lifetime != st2.lifetime ||
            memcmp(st.secret, st2.secret, sizeof st.secret) != 0)
            abort();
    }
    /* The ends of time, and a configuration that holds neither key: only
     * memory safety is checked. */
    r = mk__ticket_open(f->sc, data, size, 0, &st);
    r |= mk__ticket_open(f->sc, data, size, UINT64_MAX, &st);
    r |= mk__ticket_open(f->sc_tk, data, size, now, &st);
    (void)r;
    return 0;
}
