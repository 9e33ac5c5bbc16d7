/* The plugin ABI's struct sizes and member offsets on x86_64 (LP64), frozen. A plugin built
 * against an older plugin_abi.h reads and writes exactly these offsets, so a member never moves
 * and a struct only grows at its end: a failing row is an ABI break (a new major), and a member
 * added at the end (a new minor) adds its row here and changes its struct's size. A new struct
 * adds its rows at the end of each list. ABI 1.2 grew prpc_message, prpc_delivery, prpc_reply,
 * prpc_publish and prpc_broker_vtable and added prpc_pushed_reply and prpc_stored_result; ABI 1.3
 * grew prpc_invocation. */
#ifndef PRPC_TESTS_SDK_ABI_LAYOUT_H
#define PRPC_TESTS_SDK_ABI_LAYOUT_H

#include <stddef.h>

#include "prpc/plugin_abi.h"

/* X(struct, size) */
#define PRPC_FROZEN_SIZES(X)    \
  X(prpc_str, 16)               \
  X(prpc_bytes, 16)             \
  X(prpc_error, 16)             \
  X(prpc_host, 24)              \
  X(prpc_option_spec, 48)       \
  X(prpc_option, 32)            \
  X(prpc_config, 24)            \
  X(prpc_message, 248)          \
  X(prpc_invocation, 136)       \
  X(prpc_outcome, 72)           \
  X(prpc_invoker, 32)           \
  X(prpc_function_info, 72)     \
  X(prpc_delivery, 96)          \
  X(prpc_subscribe_options, 80) \
  X(prpc_reply, 112)            \
  X(prpc_finish, 32)            \
  X(prpc_publish, 88)           \
  X(prpc_queue_stats, 40)       \
  X(prpc_dead_letter, 64)       \
  X(prpc_broker_vtable, 144)    \
  X(prpc_codec_vtable, 48)      \
  X(prpc_executor_vtable, 48)   \
  X(prpc_functions_vtable, 48)  \
  X(prpc_factory, 56)           \
  X(prpc_plugin, 48)            \
  X(prpc_pushed_reply, 72)      \
  X(prpc_stored_result, 56)

/* X(struct, member, offset) */
#define PRPC_FROZEN_OFFSETS(X)                         \
  X(prpc_str, data, 0)                                 \
  X(prpc_str, size, 8)                                 \
  X(prpc_bytes, data, 0)                               \
  X(prpc_bytes, size, 8)                               \
  X(prpc_error, buf, 0)                                \
  X(prpc_error, capacity, 8)                           \
  X(prpc_host, struct_size, 0)                         \
  X(prpc_host, abi_major, 4)                           \
  X(prpc_host, abi_minor, 6)                           \
  X(prpc_host, ud, 8)                                  \
  X(prpc_host, log, 16)                                \
  X(prpc_option_spec, struct_size, 0)                  \
  X(prpc_option_spec, key, 8)                          \
  X(prpc_option_spec, type, 16)                        \
  X(prpc_option_spec, default_value, 24)               \
  X(prpc_option_spec, help, 32)                        \
  X(prpc_option_spec, flags, 40)                       \
  X(prpc_option, key, 0)                               \
  X(prpc_option, value, 16)                            \
  X(prpc_config, struct_size, 0)                       \
  X(prpc_config, items, 8)                             \
  X(prpc_config, count, 16)                            \
  X(prpc_message, struct_size, 0)                      \
  X(prpc_message, func_name, 8)                        \
  X(prpc_message, func_args, 24)                       \
  X(prpc_message, func_kwargs, 40)                     \
  X(prpc_message, message_id, 56)                      \
  X(prpc_message, result, 72)                          \
  X(prpc_message, has_exception, 88)                   \
  X(prpc_message, exception_info, 96)                  \
  X(prpc_message, date_create_message, 112)            \
  X(prpc_message, date_done_message, 128)              \
  X(prpc_message, reply_to, 144)                       \
  X(prpc_message, deadline, 160)                       \
  X(prpc_message, attempt, 176)                        \
  X(prpc_message, exception_type, 184)                 \
  X(prpc_message, traceback, 200)                      \
  X(prpc_message, traceparent, 216)                    \
  X(prpc_message, extensions, 232)                     \
  X(prpc_invocation, struct_size, 0)                   \
  X(prpc_invocation, call_id, 8)                       \
  X(prpc_invocation, func_name, 16)                    \
  X(prpc_invocation, args, 32)                         \
  X(prpc_invocation, kwargs, 48)                       \
  X(prpc_invocation, dialect, 64)                      \
  X(prpc_invocation, message_id, 80)                   \
  X(prpc_invocation, timeout_ms, 96)                   \
  X(prpc_invocation, traceparent, 104)                 \
  X(prpc_invocation, tracestate, 120)                  \
  X(prpc_outcome, struct_size, 0)                      \
  X(prpc_outcome, status, 4)                           \
  X(prpc_outcome, result, 8)                           \
  X(prpc_outcome, error_type, 24)                      \
  X(prpc_outcome, error_message, 40)                   \
  X(prpc_outcome, traceback, 56)                       \
  X(prpc_invoker, struct_size, 0)                      \
  X(prpc_invoker, ud, 8)                               \
  X(prpc_invoker, invoke, 16)                          \
  X(prpc_invoker, cancel, 24)                          \
  X(prpc_function_info, struct_size, 0)                \
  X(prpc_function_info, name, 8)                       \
  X(prpc_function_info, worker, 24)                    \
  X(prpc_function_info, spec_json, 40)                 \
  X(prpc_function_info, doc, 56)                       \
  X(prpc_delivery, struct_size, 0)                     \
  X(prpc_delivery, flavour, 4)                         \
  X(prpc_delivery, queue, 8)                           \
  X(prpc_delivery, token, 24)                          \
  X(prpc_delivery, payload, 40)                        \
  X(prpc_delivery, delivery_count, 56)                 \
  X(prpc_delivery, signature, 64)                      \
  X(prpc_delivery, key_id, 80)                         \
  X(prpc_subscribe_options, struct_size, 0)            \
  X(prpc_subscribe_options, queue, 8)                  \
  X(prpc_subscribe_options, group, 24)                 \
  X(prpc_subscribe_options, consumer, 40)              \
  X(prpc_subscribe_options, flavours, 56)              \
  X(prpc_subscribe_options, max_outstanding, 60)       \
  X(prpc_subscribe_options, batch_size, 64)            \
  X(prpc_subscribe_options, visibility_timeout_ms, 72) \
  X(prpc_reply, struct_size, 0)                        \
  X(prpc_reply, flavour, 4)                            \
  X(prpc_reply, queue, 8)                              \
  X(prpc_reply, message_id, 24)                        \
  X(prpc_reply, reply_to, 40)                          \
  X(prpc_reply, payload, 56)                           \
  X(prpc_reply, flags, 72)                             \
  X(prpc_reply, signature, 80)                         \
  X(prpc_reply, key_id, 96)                            \
  X(prpc_finish, struct_size, 0)                       \
  X(prpc_finish, reply, 8)                             \
  X(prpc_finish, dead_letter_reason, 16)               \
  X(prpc_publish, struct_size, 0)                      \
  X(prpc_publish, flavour, 4)                          \
  X(prpc_publish, queue, 8)                            \
  X(prpc_publish, message_id, 24)                      \
  X(prpc_publish, payload, 40)                         \
  X(prpc_publish, signature, 56)                       \
  X(prpc_publish, key_id, 72)                          \
  X(prpc_queue_stats, struct_size, 0)                  \
  X(prpc_queue_stats, length, 8)                       \
  X(prpc_queue_stats, pending, 16)                     \
  X(prpc_queue_stats, consumers, 24)                   \
  X(prpc_queue_stats, dead_letters, 32)                \
  X(prpc_dead_letter, struct_size, 0)                  \
  X(prpc_dead_letter, id, 8)                           \
  X(prpc_dead_letter, flavour, 24)                     \
  X(prpc_dead_letter, reason, 32)                      \
  X(prpc_dead_letter, payload, 48)                     \
  X(prpc_broker_vtable, struct_size, 0)                \
  X(prpc_broker_vtable, create, 8)                     \
  X(prpc_broker_vtable, destroy, 16)                   \
  X(prpc_broker_vtable, connect, 24)                   \
  X(prpc_broker_vtable, subscribe, 32)                 \
  X(prpc_broker_vtable, unsubscribe, 40)               \
  X(prpc_broker_vtable, finish, 48)                    \
  X(prpc_broker_vtable, touch, 56)                     \
  X(prpc_broker_vtable, lookup_result, 64)             \
  X(prpc_broker_vtable, publish, 72)                   \
  X(prpc_broker_vtable, open_replies, 80)              \
  X(prpc_broker_vtable, queue_stats, 88)               \
  X(prpc_broker_vtable, dead_letters, 96)              \
  X(prpc_broker_vtable, requeue_dead_letters, 104)     \
  X(prpc_broker_vtable, open_replies_signed, 112)      \
  X(prpc_broker_vtable, lookup_result_signed, 120)     \
  X(prpc_broker_vtable, announce_server, 128)          \
  X(prpc_broker_vtable, list_servers, 136)             \
  X(prpc_codec_vtable, struct_size, 0)                 \
  X(prpc_codec_vtable, create, 8)                      \
  X(prpc_codec_vtable, destroy, 16)                    \
  X(prpc_codec_vtable, dialect, 24)                    \
  X(prpc_codec_vtable, decode, 32)                     \
  X(prpc_codec_vtable, encode, 40)                     \
  X(prpc_executor_vtable, struct_size, 0)              \
  X(prpc_executor_vtable, create, 8)                   \
  X(prpc_executor_vtable, destroy, 16)                 \
  X(prpc_executor_vtable, submit, 24)                  \
  X(prpc_executor_vtable, shutdown, 32)                \
  X(prpc_executor_vtable, workers, 40)                 \
  X(prpc_functions_vtable, struct_size, 0)             \
  X(prpc_functions_vtable, create, 8)                  \
  X(prpc_functions_vtable, destroy, 16)                \
  X(prpc_functions_vtable, list, 24)                   \
  X(prpc_functions_vtable, invoke, 32)                 \
  X(prpc_functions_vtable, cancel, 40)                 \
  X(prpc_factory, struct_size, 0)                      \
  X(prpc_factory, kind, 4)                             \
  X(prpc_factory, name, 8)                             \
  X(prpc_factory, description, 16)                     \
  X(prpc_factory, options, 24)                         \
  X(prpc_factory, option_count, 32)                    \
  X(prpc_factory, flags, 40)                           \
  X(prpc_factory, vtable, 48)                          \
  X(prpc_plugin, struct_size, 0)                       \
  X(prpc_plugin, abi_major, 4)                         \
  X(prpc_plugin, abi_minor, 6)                         \
  X(prpc_plugin, name, 8)                              \
  X(prpc_plugin, version, 16)                          \
  X(prpc_plugin, description, 24)                      \
  X(prpc_plugin, factories, 32)                        \
  X(prpc_plugin, factory_count, 40)                    \
  X(prpc_pushed_reply, struct_size, 0)                 \
  X(prpc_pushed_reply, message_id, 8)                  \
  X(prpc_pushed_reply, payload, 24)                    \
  X(prpc_pushed_reply, signature, 40)                  \
  X(prpc_pushed_reply, key_id, 56)                     \
  X(prpc_stored_result, struct_size, 0)                \
  X(prpc_stored_result, payload, 8)                    \
  X(prpc_stored_result, signature, 24)                 \
  X(prpc_stored_result, key_id, 40)

/* One row as a compiler laid it out: "sizeof(prpc_str)" or "prpc_str.data", and the number. */
typedef struct prpc_layout_row {
  const char* what;
  size_t value;
} prpc_layout_row;

#ifdef __cplusplus
extern "C" {
#endif

/* The rows as the C compiler lays them out (abi_layout_c.c), in the order of the lists above. */
extern const prpc_layout_row prpc_layout_in_c[];
extern const size_t prpc_layout_in_c_count;

#ifdef __cplusplus
}
#endif

#endif /* PRPC_TESTS_SDK_ABI_LAYOUT_H */
