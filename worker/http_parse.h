/*
 * http_parse.h - the one place that knows the HTTP/1.1 parser library
 * (libhttp-parser). It turns the bytes of a connection's read buffer into requests
 * described as offsets into that buffer, so the buffer may be moved or grown between
 * calls. Swapping the parser (llhttp from Debian 13 on) touches only http_parse.c.
 */
#ifndef WK_HTTP_PARSE_H
#define WK_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#define HP_MAX_FIELDS 100

/* A header line: name and value as offsets into the read buffer. */
struct hp_field {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

/* The head of the request being parsed; valid from the head callback on. */
struct hp_msg {
	const char *method;        /* static string */
	uint32_t url_off, url_len;
	uint32_t keep_end;         /* [url_off, keep_end) holds every string of the head */
	uint32_t nfields;
	uint64_t content_length;   /* when has_length */
	uint16_t version_major, version_minor;
	bool has_length, chunked, keep_alive, is_head;
	bool connect;              /* CONNECT: a tunnel */
	bool upgrade;              /* an offer to switch protocols (Upgrade + Connection: upgrade) */
	struct hp_field fields[HP_MAX_FIELDS];
};

/*
 * What the parser tells its owner. Each returns 0 to go on or an HTTP status
 * (413, 417, 501, ...) to refuse the request with. The head has passed the RFC 9112
 * checks by then: CRLF line ends, major version 1, one valid Host (none in 1.0).
 * The head callback may also return HP_HEAD_STOP: hp_execute then returns HP_HEAD
 * right after the head, so the owner can act on it before any body byte is parsed
 * (a streamed request body).
 */
#define HP_HEAD_STOP 1
struct hp_ops {
	int (*head)(void *arg, struct hp_msg *msg);
	int (*body)(void *arg, const char *data, size_t len);
};

struct hp {
	http_parser hp_parser;
	const struct hp_ops *hp_ops;
	void *hp_arg;
	char *hp_base;             /* the buffer of the hp_execute call in progress */
	int hp_last;               /* the last data callback, to join split pieces */
	bool hp_in_msg;            /* first byte of a request seen, not yet complete */
	bool hp_in_body;           /* head complete, body (if any) in progress */
	bool hp_head_done;         /* paused at the end of the head, before its last LF */
	int hp_crlf;               /* what the next framing byte must be (http_parse.c) */
	int hp_size;               /* where in a chunk-size line we are (http_parse.c) */
	bool hp_after_data;        /* the CRLF being read ends chunk data */
	uint64_t hp_chunk_left;    /* data bytes left in the current chunk */
	size_t hp_scan;            /* during hp_execute: bytes before this are checked */
	bool hp_lf_checked;        /* stopped at HP_HEAD: the byte at *off was checked */
	int hp_status;             /* on HP_ERROR: the status to answer with */
	const char *hp_reason;     /* on HP_ERROR: a short token for the log */
	struct hp_msg hp_msg;
};

enum hp_result { HP_AGAIN, HP_DONE, HP_ERROR, HP_HEAD };

/* Once per process: the cap on request line + headers (431 beyond it). */
void hp_setup(uint32_t max_header_bytes);
void hp_init(struct hp *h, const struct hp_ops *ops, void *arg);
/*
 * Parses BASE[*OFF, LEN) and advances *OFF. HP_DONE: one request is complete (*OFF
 * is just past it; call hp_finish before using its strings); HP_AGAIN: all input
 * used, more is needed; HP_ERROR: refuse with hp_status / hp_reason; HP_HEAD: the
 * head callback returned HP_HEAD_STOP (hp_finish may be called now, not again at
 * HP_DONE; the next call parses the body).
 */
enum hp_result hp_execute(struct hp *h, char *base, size_t *off, size_t len);
/*
 * NUL-terminates the complete request's strings in place and splits its URL.
 * Returns 0, or -1 if the URL is malformed.
 */
int hp_finish(struct hp *h, char *base, const char **path, const char **query);
/* The bytes [*START, *END) the parse in progress still refers to (none: both PARSED). */
void hp_keep(const struct hp *h, size_t parsed, size_t *start, size_t *end);
/* The buffer's contents moved down by DELTA bytes. */
void hp_shift(struct hp *h, size_t delta);

static inline bool
hp_in_message(const struct hp *h)
{
	return h->hp_in_msg;
}

#endif
