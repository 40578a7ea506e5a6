"""portal_verify.py — the tests' own verifier of what the portal shows a
person (DESIGN §2.5, §4.1): a C2SP checkpoint's log signature and every
witness cosignature (Ed25519 from the `cryptography` package), and RFC 9162
inclusion proofs (hashlib). Written from the specifications, not from
renkei's code: a proof renkei makes wrong fails here."""
import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DASH = "\u2014"


class NotVerified(AssertionError):
    pass


def parse_vkey(vkey):
    """(name, key id, type, public key) of a C2SP vkey."""
    name, key_id, b64 = vkey.split("+", 2)
    raw = base64.b64decode(b64)
    want = hashlib.sha256(name.encode() + b"\n" + raw[:1] + raw[1:]).digest()[:4]
    if bytes.fromhex(key_id) != want or len(raw) != 33:
        raise NotVerified(f"bad vkey {vkey!r}")
    return name, bytes.fromhex(key_id), raw[0], raw[1:]


def open_checkpoint(note, log_vkey, witness_vkeys):
    """(origin, size, root) of a checkpoint whose log signature and every
    witness's cosignature verify; NotVerified otherwise."""
    body, sep, sigs = note.partition("\n\n")
    if not sep:
        raise NotVerified("no signature lines")
    body += "\n"
    lines = body.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    signatures = [l for l in sigs.split("\n") if l]
    name, key_id, kind, pub = parse_vkey(log_vkey)
    if kind != 0x01 or name != origin:
        raise NotVerified("the log vkey does not name this origin")

    def lines_of(n):
        for line in signatures:
            if line.startswith(f"{DASH} {n} "):
                yield base64.b64decode(line.split(" ", 2)[2])

    if not any(raw[:4] == key_id and _ok(pub, raw[4:], body.encode()) for raw in lines_of(name)):
        raise NotVerified("the log's signature does not verify")
    for w in witness_vkeys:
        wname, wid, wkind, wpub = parse_vkey(w)
        if wkind != 0x04:
            raise NotVerified("not a cosignature vkey")
        found = False
        for raw in lines_of(wname):
            if raw[:4] != wid or len(raw) != 4 + 8 + 64:
                continue
            t = int.from_bytes(raw[4:12], "big")
            if _ok(wpub, raw[12:], f"cosignature/v1\ntime {t}\n".encode() + body.encode()):
                found = True
        if not found:
            raise NotVerified(f"no cosignature of {wname} verifies")
    return origin, size, root


def _ok(pub, sig, msg):
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except InvalidSignature:
        return False


def leaf_hash(leaf):
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(h, index, size, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        raise NotVerified("leaf index beyond the tree")
    fn, sn, r = index, size - 1, h
    for p in proof:
        if sn == 0:
            raise NotVerified("proof too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise NotVerified("the inclusion proof does not lead to the root")


def verify_answer(answer, log_vkey, witness_vkeys):
    """Checks a GET /v1/me/exchanges answer: the checkpoint, and each entry's
    proof; returns [(entry, leaf as a dict or None when withheld)] of the
    entries in the checkpoint, and raises NotVerified at the first that fails.
    An entry's shown fields must be its leaf's."""
    head = answer["tree_head"]
    origin, size, root = open_checkpoint(head["checkpoint"], log_vkey, witness_vkeys)
    if head["tree_size"] != size or base64.b64decode(head["root_hash"]) != root:
        raise NotVerified("tree_head does not match its checkpoint")
    out = []
    for e in answer["exchanges"]:
        if "inclusion_proof" not in e:
            continue  # newer than the checkpoint
        if "withheld" in e:
            h, leaf = base64.b64decode(e["leaf_hash"]), None
        else:
            raw = base64.b64decode(e["leaf"])
            h, leaf = leaf_hash(raw), json.loads(raw)
            for k in ("exchange_id", "requester", "provider", "business", "item", "outcome", "reason"):
                if e[k] != leaf[k]:
                    raise NotVerified(f"entry {e['leaf_index']}: {k} is not the leaf's")
        verify_inclusion(h, e["leaf_index"], size, [base64.b64decode(p) for p in e["inclusion_proof"]], root)
        out.append((e, leaf))
    return out
