/* The line kinds' first bytes, as every writer lays a line out: the C spelling of
 * blocktrace.format.lines' HEADER_PREFIX, OP_PREFIX, EVENT_PREFIX, CALL_PREFIX,
 * RETURN_PREFIX, SOURCE_PREFIX and SUMMARY_PREFIX (docs/FORMAT.md, "Line kinds by
 * their first bytes"; tests/format/test_lines.py checks the two spellings agree).
 * Each NAME has NAME_LEN, its length without the terminating NUL.
 */

#ifndef BT_LINEKINDS_H
#define BT_LINEKINDS_H

#define LINE_HEADER_PREFIX "{\"blocktrace\":"
#define LINE_OP_PREFIX "{\"pc\":"
#define LINE_EVENT_PREFIX "{\"event\":\""
#define LINE_CALL_PREFIX "{\"event\":\"call\""
#define LINE_RETURN_PREFIX "{\"event\":\"return\""
#define LINE_SOURCE_PREFIX "{\"event\":\"source\""
#define LINE_SUMMARY_PREFIX "{\"output\":"

#define LINE_HEADER_PREFIX_LEN (sizeof(LINE_HEADER_PREFIX) - 1)
#define LINE_OP_PREFIX_LEN (sizeof(LINE_OP_PREFIX) - 1)
#define LINE_EVENT_PREFIX_LEN (sizeof(LINE_EVENT_PREFIX) - 1)
#define LINE_CALL_PREFIX_LEN (sizeof(LINE_CALL_PREFIX) - 1)
#define LINE_RETURN_PREFIX_LEN (sizeof(LINE_RETURN_PREFIX) - 1)
#define LINE_SOURCE_PREFIX_LEN (sizeof(LINE_SOURCE_PREFIX) - 1)
#define LINE_SUMMARY_PREFIX_LEN (sizeof(LINE_SUMMARY_PREFIX) - 1)

#endif
