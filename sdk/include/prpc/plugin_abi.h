/*
 * PRPC plugin ABI: the pure-C contract between a host and a plugin shared library.
 *
 * Rules that keep old plugins and new hosts (and the reverse) working:
 *  - A plugin exports exactly one symbol, prpc_plugin_entry(). It receives the host's ABI version
 *    and returns a static description of the plugin: its name, version and factories.
 *  - ABI major must be equal on both sides; the plugin's minor must be <= the host's minor.
 *  - Every struct begins with `struct_size`. Structs only grow at the end. A reader copies at most
 *    `struct_size` bytes into a zeroed struct, so fields a writer did not know read as zero/NULL.
 *    A vtable too short to hold a pointer, or a NULL pointer, means "not supported": the host
 *    then falls back as the pointer's comment says.
 *  - No C++ object, exception, std:: type or allocator crosses this boundary. Bytes and strings
 *    cross as borrowed views, valid only for the duration of the call that passes them; a side
 *    that keeps data copies it. Results with variable size come back through sink callbacks.
 *  - Errors cross as a prpc_status code plus a message (an out buffer, or a view in a callback).
 *  - Callbacks may be invoked from any thread the plugin owns; each callback is called exactly once
 *    unless documented otherwise.
 *
 * This header depends on nothing but <stddef.h> and <stdint.h>.
 */
#ifndef PRPC_PLUGIN_ABI_H
#define PRPC_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#define PRPC_ABI_MAJOR 1
#define PRPC_ABI_MINOR 3

#define PRPC_PLUGIN_ENTRY_SYMBOL "prpc_plugin_entry"

#if defined(__GNUC__)
#define PRPC_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define PRPC_PLUGIN_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ------------------------------------------------------------------------ */

typedef int32_t prpc_status;

enum {
  PRPC_OK = 0,
  PRPC_ERR_INVALID_ARGUMENT = 1, /* the input is wrong; retrying the same input fails again */
  PRPC_ERR_NOT_FOUND = 2,
  PRPC_ERR_ALREADY_EXISTS = 3,
  PRPC_ERR_UNAVAILABLE = 4, /* a service is unreachable; retriable */
  PRPC_ERR_TIMEOUT = 5,
  PRPC_ERR_DECODE = 6,
  PRPC_ERR_ENCODE = 7,
  PRPC_ERR_CANCELLED = 8,
  PRPC_ERR_RESOURCE_EXHAUSTED = 9, /* a configured limit was hit */
  PRPC_ERR_FAILED_PRECONDITION = 10,
  PRPC_ERR_INTERNAL = 11,
  PRPC_ERR_UNIMPLEMENTED = 12,
  PRPC_ERR_FUNCTION = 13 /* a served function failed (raised); see prpc_outcome */
};

/* ---- views ------------------------------------------------------------------------------- */

/* Borrowed UTF-8 text; not NUL-terminated. */
typedef struct prpc_str {
  const char* data;
  size_t size;
} prpc_str;

/* Borrowed bytes. */
typedef struct prpc_bytes {
  const uint8_t* data;
  size_t size;
} prpc_bytes;

/* Out-parameter for a synchronous error message: the callee writes at most capacity-1 bytes and a
 * terminating NUL. buf may be NULL when the caller does not want the message. */
typedef struct prpc_error {
  char* buf;
  size_t capacity;
} prpc_error;

/* Receives a variable-size result (a string or bytes) during the call that produces it. */
typedef void (*prpc_bytes_sink_fn)(void* ud, prpc_bytes value);

/* Completion of an asynchronous operation without a value. */
typedef void (*prpc_done_fn)(void* ud, prpc_status status, prpc_str message);

/* ---- host services ----------------------------------------------------------------------- */

enum {
  PRPC_LOG_TRACE = 0,
  PRPC_LOG_DEBUG = 1,
  PRPC_LOG_INFO = 2,
  PRPC_LOG_WARN = 3,
  PRPC_LOG_ERROR = 4
};

/* What the host offers every plugin instance. Valid until the instance is destroyed. */
typedef struct prpc_host {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;
  void* ud;
  void (*log)(void* ud, int32_t level, prpc_str component, prpc_str message);
} prpc_host;

/* ---- configuration ----------------------------------------------------------------------- */

enum {
  PRPC_OPT_STRING = 0,
  PRPC_OPT_INT = 1,
  PRPC_OPT_BOOL = 2,
  PRPC_OPT_DOUBLE = 3,
  PRPC_OPT_DURATION_MS = 4 /* accepts "250ms", "5s", "2m", "6h" or a number of milliseconds */
};

#define PRPC_OPT_FLAG_REQUIRED 0x1u
#define PRPC_OPT_FLAG_SECRET 0x2u /* never printed or logged */

/* One entry of a factory's declarative option table. */
typedef struct prpc_option_spec {
  uint32_t struct_size;
  const char* key;
  int32_t type;
  const char* default_value; /* NULL: no default */
  const char* help;
  uint32_t flags;
} prpc_option_spec;

/* A resolved option: the host validated its type and filled in defaults. Values are text in the
 * canonical form of their type (ints and durations in decimal milliseconds, bools "true"/"false").
 */
typedef struct prpc_option {
  prpc_str key;
  prpc_str value;
} prpc_option;

typedef struct prpc_config {
  uint32_t struct_size;
  const prpc_option* items;
  size_t count;
} prpc_config;

/* ---- the message ------------------------------------------------------------------------- */

enum { PRPC_FLAVOUR_PYTHON = 0, PRPC_FLAVOUR_RAW = 1 };

/* PROTOCOL.md section 2. func_args, func_kwargs and result are JSON text in the codec's dialect
 * ("json" or "jsonpickle"); dates are ISO 8601 text (empty when absent). */
/* ABI 1.2: `extensions` is the JSON object text of the message's other fields, plain JSON only
 * (e.g. {"server": "host-42", "time_queued": 0.0012}); empty when there are none. */
typedef struct prpc_message {
  uint32_t struct_size;
  prpc_str func_name;
  prpc_str func_args;
  prpc_str func_kwargs;
  prpc_str message_id;
  prpc_str result;
  int32_t has_exception;
  prpc_str exception_info;
  prpc_str date_create_message;
  prpc_str date_done_message;
  prpc_str reply_to;
  prpc_str deadline;
  uint32_t attempt;
  prpc_str exception_type;
  prpc_str traceback;
  prpc_str traceparent;
  prpc_str extensions; /* ABI 1.2 */
} prpc_message;

/* Receives a decoded message. On failure status != PRPC_OK, error says why, and msg (which may be
 * NULL) holds whatever could be salvaged, notably message_id and reply_to. */
typedef void (*prpc_message_sink_fn)(void* ud, prpc_status status, const prpc_message* msg,
                                     prpc_str error);

/* ---- function calls ---------------------------------------------------------------------- */

typedef struct prpc_invocation {
  uint32_t struct_size;
  uint64_t call_id; /* unique per host process; the key for cancel() */
  prpc_str func_name;
  prpc_str args;    /* JSON array text, dialect below */
  prpc_str kwargs;  /* JSON object text */
  prpc_str dialect; /* "json" or "jsonpickle" */
  prpc_str message_id;
  int64_t timeout_ms; /* 0: no limit */
  /* ABI 1.3: the request's W3C trace context, for the function's span; empty when none (and
   * from hosts before 1.3). */
  prpc_str traceparent;
  prpc_str tracestate;
} prpc_invocation;

typedef struct prpc_outcome {
  uint32_t struct_size;
  prpc_status status; /* PRPC_OK: `result` holds the JSON result; otherwise an error */
  prpc_str result;
  prpc_str error_type;    /* e.g. "ValueError", "TimeoutError", "UnknownFunctionError" */
  prpc_str error_message; /* may be empty */
  prpc_str traceback;     /* may be empty */
} prpc_outcome;

typedef void (*prpc_outcome_fn)(void* ud, const prpc_outcome* outcome);

/* Runs a function in the current process. Given by the host to executors. invoke() may call
 * `done` before it returns or later from any thread, exactly once. */
typedef struct prpc_invoker {
  uint32_t struct_size;
  void* ud;
  void (*invoke)(void* ud, const prpc_invocation* inv, prpc_outcome_fn done, void* done_ud);
  void (*cancel)(void* ud, uint64_t call_id); /* best effort; may be NULL */
} prpc_invoker;

typedef struct prpc_function_info {
  uint32_t struct_size;
  prpc_str name;
  prpc_str worker;    /* executor name ("thread", "process", "async"); empty: the default */
  prpc_str spec_json; /* JSON object describing the parameters; "{}" when unknown */
  prpc_str doc;
} prpc_function_info;

typedef void (*prpc_function_info_fn)(void* ud, const prpc_function_info* info);

/* ---- broker ------------------------------------------------------------------------------ */

/* Signatures (ABI 1.2) travel beside a payload, never inside it: `signature` is the text the
 * sender attached (e.g. lowercase hex of an HMAC of the payload's exact bytes) and `key_id` names
 * the key that made it. Both are empty when the message is unsigned or the broker predates 1.2.
 * A broker stores and hands them over as they are; it never checks them. */

typedef struct prpc_delivery {
  uint32_t struct_size;
  int32_t flavour;
  prpc_str queue; /* the logical queue name q */
  prpc_str token; /* the broker's id of this delivery (stream entry id, partition/offset) */
  prpc_bytes payload;
  uint32_t delivery_count; /* 1 on the first delivery */
  prpc_str signature;      /* ABI 1.2: the request's, as published */
  prpc_str key_id;         /* ABI 1.2 */
} prpc_delivery;

/* Called by the broker's own thread with a batch of deliveries. */
typedef void (*prpc_delivery_fn)(void* ud, const prpc_delivery* const* items, size_t count);

#define PRPC_SUBSCRIBE_PYTHON 0x1u
#define PRPC_SUBSCRIBE_RAW 0x2u

typedef struct prpc_subscribe_options {
  uint32_t struct_size;
  prpc_str queue;
  prpc_str group;
  prpc_str consumer;        /* unique per server instance */
  uint32_t flavours;        /* PRPC_SUBSCRIBE_* bits */
  uint32_t max_outstanding; /* deliveries handed over and not yet finished, at most */
  uint32_t batch_size;
  int64_t
      visibility_timeout_ms; /* an unfinished delivery idle this long may go to another consumer */
} prpc_subscribe_options;

#define PRPC_REPLY_PUSH_ONLY 0x1u /* the result is already stored: only push it to reply_to */

typedef struct prpc_reply {
  uint32_t struct_size;
  int32_t flavour;
  prpc_str queue;
  prpc_str message_id;
  prpc_str reply_to; /* empty: store only */
  prpc_bytes payload;
  uint32_t flags;
  prpc_str signature; /* ABI 1.2: stored with the result and pushed with the reply */
  prpc_str key_id;    /* ABI 1.2 */
} prpc_reply;

/* What to do with a delivery that is done: store and push the reply (if any), move the request to
 * the dead-letter queue (if dead_letter_reason is not empty), then acknowledge it. */
typedef struct prpc_finish {
  uint32_t struct_size;
  const prpc_reply* reply; /* NULL: no reply */
  prpc_str dead_letter_reason;
} prpc_finish;

typedef struct prpc_publish {
  uint32_t struct_size;
  int32_t flavour;
  prpc_str queue;
  prpc_str message_id;
  prpc_bytes payload;
  prpc_str signature; /* ABI 1.2: handed over with the delivery */
  prpc_str key_id;    /* ABI 1.2 */
} prpc_publish;

/* A stored result, or payload == NULL when there is none. */
typedef void (*prpc_lookup_fn)(void* ud, prpc_status status, const prpc_bytes* payload,
                               prpc_str message);

/* A pushed reply for this client. */
typedef void (*prpc_reply_fn)(void* ud, prpc_str message_id, prpc_bytes payload);

/* ABI 1.2: a pushed reply with the signature it was finished with. */
typedef struct prpc_pushed_reply {
  uint32_t struct_size;
  prpc_str message_id;
  prpc_bytes payload;
  prpc_str signature;
  prpc_str key_id;
} prpc_pushed_reply;

typedef void (*prpc_pushed_reply_fn)(void* ud, const prpc_pushed_reply* reply);

/* ABI 1.2: a stored result with the signature it was finished with. */
typedef struct prpc_stored_result {
  uint32_t struct_size;
  prpc_bytes payload;
  prpc_str signature;
  prpc_str key_id;
} prpc_stored_result;

/* The stored result, or result == NULL when there is none. */
typedef void (*prpc_stored_result_fn)(void* ud, prpc_status status,
                                      const prpc_stored_result* result, prpc_str message);

typedef struct prpc_queue_stats {
  uint32_t struct_size;
  int64_t length;  /* entries in the request queue(s) */
  int64_t pending; /* delivered, not acknowledged */
  int64_t consumers;
  int64_t dead_letters;
} prpc_queue_stats;

typedef struct prpc_dead_letter {
  uint32_t struct_size;
  prpc_str id;
  int32_t flavour;
  prpc_str reason;
  prpc_bytes payload;
} prpc_dead_letter;

typedef void (*prpc_dead_letter_fn)(void* ud, const prpc_dead_letter* letter);

typedef struct prpc_broker_vtable {
  uint32_t struct_size;
  prpc_status (*create)(const prpc_host* host, const prpc_config* config, void** out_self,
                        prpc_error* err);
  void (*destroy)(void* self);
  /* Reaches the broker once; a one-line error when it cannot. */
  prpc_status (*connect)(void* self, prpc_error* err);

  /* Server side. The sink is called until unsubscribe() returns. */
  prpc_status (*subscribe)(void* self, const prpc_subscribe_options* options, prpc_delivery_fn sink,
                           void* sink_ud, prpc_error* err);
  void (*unsubscribe)(void* self);
  void (*finish)(void* self, const prpc_delivery* delivery, const prpc_finish* what,
                 prpc_done_fn done, void* done_ud);
  /* Keeps a long call's delivery from being claimed by another consumer. */
  void (*touch)(void* self, const prpc_delivery* delivery);
  void (*lookup_result)(void* self, int32_t flavour, prpc_str queue, prpc_str message_id,
                        prpc_lookup_fn done, void* done_ud);

  /* Client side. open_replies() starts this instance's reply listener for queue q (once per
   * queue) and writes the reply_to address that requests to q must carry through
   * `reply_to_sink`. on_reply may be called from the broker's thread until destroy(). */
  void (*publish)(void* self, const prpc_publish* message, prpc_done_fn done, void* done_ud);
  prpc_status (*open_replies)(void* self, prpc_str queue, prpc_reply_fn on_reply, void* on_reply_ud,
                              prpc_bytes_sink_fn reply_to_sink, void* sink_ud, prpc_error* err);

  /* Operations. */
  prpc_status (*queue_stats)(void* self, prpc_str queue, prpc_queue_stats* out, prpc_error* err);
  prpc_status (*dead_letters)(void* self, prpc_str queue, size_t max_count,
                              prpc_dead_letter_fn sink, void* sink_ud, prpc_error* err);

  /* ABI 1.1. Puts the dead letters with these ids (all of them when id_count is 0) back into
   * their request queue, deletes the error result stored for them, removes them from the dead
   * letters and writes how many it requeued to *out_count. A host treats a vtable too short to
   * hold this pointer, or a NULL pointer, as "this broker cannot requeue dead letters". */
  prpc_status (*requeue_dead_letters)(void* self, prpc_str queue, const prpc_str* ids,
                                      size_t id_count, uint64_t* out_count, prpc_error* err);

  /* ABI 1.2. A host treats a vtable too short to hold one of these pointers, or a NULL pointer,
   * as follows. */

  /* open_replies() whose handler also receives the reply's signature. Replies for a queue go to
   * the handler of the newest open_replies or open_replies_signed call. Missing: the host uses
   * open_replies(), and signatures read as empty. */
  prpc_status (*open_replies_signed)(void* self, prpc_str queue, prpc_pushed_reply_fn on_reply,
                                     void* on_reply_ud, prpc_bytes_sink_fn reply_to_sink,
                                     void* sink_ud, prpc_error* err);
  /* lookup_result() with the result's signature. Missing: the host uses lookup_result(). */
  void (*lookup_result_signed)(void* self, int32_t flavour, prpc_str queue, prpc_str message_id,
                               prpc_stored_result_fn done, void* done_ud);
  /* Records that server `server_id` (the consumer name it subscribes with) serving `queue` is
   * alive, with `info_json` (a JSON object; empty means {}), until ttl_ms passes without another
   * announcement. Servers call it about once a second. Missing: PRPC_ERR_UNIMPLEMENTED. */
  void (*announce_server)(void* self, prpc_str queue, prpc_str server_id, prpc_bytes info_json,
                          int64_t ttl_ms, prpc_done_fn done, void* done_ud);
  /* Writes, through one call of `sink`, the JSON array of the servers announced on `queue`:
   * [{"id": "...", "alive": true, "age_ms": 250, "info": {...}}], age_ms counting from the last
   * announcement. Servers whose announcement expired recently are listed with "alive": false
   * when the broker can tell. Missing: PRPC_ERR_UNIMPLEMENTED. */
  prpc_status (*list_servers)(void* self, prpc_str queue, prpc_bytes_sink_fn sink, void* sink_ud,
                              prpc_error* err);
} prpc_broker_vtable;

/* ---- codec ------------------------------------------------------------------------------- */

typedef struct prpc_codec_vtable {
  uint32_t struct_size;
  prpc_status (*create)(const prpc_host* host, const prpc_config* config, void** out_self,
                        prpc_error* err);
  void (*destroy)(void* self);
  /* The dialect of func_args/func_kwargs/result text: "json" or "jsonpickle". Static string. */
  const char* (*dialect)(void* self);
  void (*decode)(void* self, prpc_bytes input, prpc_message_sink_fn sink, void* sink_ud);
  prpc_status (*encode)(void* self, const prpc_message* msg, prpc_bytes_sink_fn sink, void* sink_ud,
                        prpc_error* err);
} prpc_codec_vtable;

/* ---- executor ---------------------------------------------------------------------------- */

typedef struct prpc_executor_vtable {
  uint32_t struct_size;
  /* `invoker` stays valid until destroy() returns. */
  prpc_status (*create)(const prpc_host* host, const prpc_config* config,
                        const prpc_invoker* invoker, void** out_self, prpc_error* err);
  void (*destroy)(void* self);
  /* Runs the invocation; `done` is called exactly once (with PRPC_ERR_TIMEOUT past the limit,
   * PRPC_ERR_CANCELLED after shutdown). */
  void (*submit)(void* self, const prpc_invocation* inv, prpc_outcome_fn done, void* done_ud);
  /* Stops taking work and waits up to grace_ms for running calls; the rest end CANCELLED. */
  void (*shutdown)(void* self, int64_t grace_ms);
  uint32_t (*workers)(void* self);
} prpc_executor_vtable;

/* ---- functions --------------------------------------------------------------------------- */

typedef struct prpc_functions_vtable {
  uint32_t struct_size;
  prpc_status (*create)(const prpc_host* host, const prpc_config* config, void** out_self,
                        prpc_error* err);
  void (*destroy)(void* self);
  void (*list)(void* self, prpc_function_info_fn sink, void* sink_ud);
  void (*invoke)(void* self, const prpc_invocation* inv, prpc_outcome_fn done, void* done_ud);
  void (*cancel)(void* self, uint64_t call_id); /* may be NULL */
} prpc_functions_vtable;

/* ---- plugin description ------------------------------------------------------------------ */

enum { PRPC_KIND_BROKER = 1, PRPC_KIND_CODEC = 2, PRPC_KIND_EXECUTOR = 3, PRPC_KIND_FUNCTIONS = 4 };

#define PRPC_FACTORY_OPEN_OPTIONS 0x1u /* keys beyond the option table are passed through */

typedef struct prpc_factory {
  uint32_t struct_size;
  int32_t kind;
  const char* name; /* unique per kind among loaded plugins, e.g. "redis" */
  const char* description;
  const prpc_option_spec* const* options;
  size_t option_count;
  uint32_t flags;
  const void* vtable; /* the kind's vtable; it begins with its own struct_size */
} prpc_factory;

typedef struct prpc_plugin {
  uint32_t struct_size;
  uint16_t abi_major;
  uint16_t abi_minor;
  const char* name;
  const char* version;
  const char* description;
  const prpc_factory* const* factories;
  size_t factory_count;
} prpc_plugin;

/* The one exported symbol. Returns a description with static lifetime, or NULL when the plugin
 * cannot serve a host of this ABI version. */
typedef const prpc_plugin* (*prpc_plugin_entry_fn)(uint16_t host_abi_major,
                                                   uint16_t host_abi_minor);

#ifdef __cplusplus
}
#endif

#endif /* PRPC_PLUGIN_ABI_H */
