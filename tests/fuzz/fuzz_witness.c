/* fuzz_witness.c — what a witness reads of the outside (src/witness): an
 * add-checkpoint body (C2SP tlog-witness) is refused or gives an old size,
 * at most 63 proof hashes and a checkpoint inside the body; the checkpoint
 * and its cosignatures are then opened as the witness and the core do
 * (checkpoint.h), which must refuse, never crash, whatever the bytes. */
#include "fuzz.h"
#include "records/checkpoint.h"
#include "witness/witness.h"

static rk_vkey log_vkey, witness_vkey;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* keys of the corpus's seeds' names; their signatures do not verify
     * (the harness has no private key), which is a path to fuzz too */
    if (rk_vkey_parse("renkei/renkei/core+8d0f2cb1+AXGPzL6U0dRLo4S/gN5OKmdEbv3h3eAh0qFkwE4LAj+o", &log_vkey) != RK_OK)
        memset(&log_vkey, 0, sizeof log_vkey);
    if (rk_vkey_parse("renkei/renkei/witness-1+bb1c0a7e+BFeQg6BgyrVQTAIVmSUre0uygYu8v8YG2heopBOIJ3aP",
                      &witness_vkey) != RK_OK)
        memset(&witness_vkey, 0, sizeof witness_vkey);
    log_vkey.type = RK_VKEY_NOTE;
    witness_vkey.type = RK_VKEY_COSIGNATURE;
    snprintf(log_vkey.name, sizeof log_vkey.name, "renkei/renkei/core");
    snprintf(witness_vkey.name, sizeof witness_vkey.name, "renkei/renkei/witness-1");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = fz_str(data, size);
    rk_witness_add in;
    if (rk_witness_parse(body, size, &in) == 0) {
        FZ_CHECK(in.proof_len <= RK_WITNESS_MAX_PROOF);
        FZ_CHECK(in.note > body && in.note + in.note_len == body + size && in.note_len > 0);
        uint64_t csize = 0, t = 0;
        rk_hash root;
        rk_rc rc = rk_checkpoint_open(in.note, in.note_len, &log_vkey, &csize, root);
        FZ_CHECK(rc == RK_OK || rc == RK_ERR_INVALID || rc == RK_ERR_CRYPTO || rc == RK_ERR_NOMEM);
        rc = rk_cosignature_check(&witness_vkey, in.note, in.note_len, &t);
        FZ_CHECK(rc == RK_OK || rc == RK_ERR_INVALID || rc == RK_ERR_CRYPTO);
    }
    free(body);
    return 0;
}
