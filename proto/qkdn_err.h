/* qkdn error codes: one namespace shared by the codec, libqkdn, the KM, the
 * controller, the CLI and the provider. 0 is success; errors are negative in
 * C and travel on the wire as their positive value in an ERROR message. The
 * numbers are stable: never renumber, only append.
 *
 * QKDN_ERRORS is the one table of them: number, C name, the stable name
 * that scripts read (CLI --json, docs/cli.md) and the text that
 * qkdn_strerror() gives (also the provider's reason strings). */
#ifndef QKDN_ERR_H
#define QKDN_ERR_H

/* X(number, C name, stable name, text) */
#define QKDN_ERRORS(X)                                                         \
	X(1, BAD_REQUEST, "bad_request", "bad request")                        \
	X(2, INSUFFICIENT_KEY, "insufficient_key_material",                    \
	  "insufficient key material")                                         \
	X(3, UNKNOWN_KEY_ID, "unknown_key_id", "unknown key ID")               \
	X(4, NOT_AUTHORISED, "not_authorised", "not authorised")               \
	X(5, NO_ROUTE, "no_route", "no route to destination")                  \
	X(6, TIMEOUT, "timeout", "timeout")                                    \
	X(7, UNREACHABLE, "unreachable", "peer unreachable")                   \
	X(8, INTERNAL, "internal_error", "internal error")                     \
	X(9, STORE, "key_store_error", "key store error")                      \
	X(10, NOMEM, "out_of_memory", "out of memory")                         \
	X(11, VERSION, "unsupported_version", "unsupported protocol version")  \
	X(12, UNKNOWN_TYPE, "unknown_message_type", "unknown message type")    \
	X(13, TRUNCATED, "truncated_message", "truncated message")             \
	X(14, WRONG_TYPE, "wrong_field_type", "field of wrong type")           \
	X(15, RANGE, "out_of_range", "value out of range")                     \
	X(16, TOO_LARGE, "too_large", "value too large")                       \
	X(17, MISSING_FIELD, "missing_field", "required field missing")        \
	X(18, CONFIG, "bad_configuration", "bad configuration")                \
	X(19, ALREADY_SUPPLIED, "already_supplied", "key already supplied")    \
	X(20, AUTH_FAILED, "authentication_failed", "authentication failed")   \
	X(21, REPLAY, "replayed_key_material", "replayed key material")        \
	X(22, SHUTDOWN, "shutting_down", "shutting down")                      \
	X(23, BLOCK_MISSING, "block_missing",                                  \
	  "link key block missing at peer")                                    \
	X(24, UNSUPPORTED, "unsupported", "unsupported request")               \
	X(25, IO, "io_error", "I/O error")

enum qkdn_err {
	QKDN_OK = 0,
#define QKDN_ERR_ENUM_(num, sym, name, text) QKDN_E_##sym = -(num),
	QKDN_ERRORS(QKDN_ERR_ENUM_)
#undef QKDN_ERR_ENUM_
	    QKDN_E_LAST_ = -26 /* one past the last code */
};

/* Human-readable text of a qkdn error code (never NULL). */
const char *qkdn_strerror(int err);
/* Stable name of a qkdn error code, e.g. "unknown_key_id" (never NULL). */
const char *qkdn_errname(int err);

#endif
