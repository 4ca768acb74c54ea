/* link pause|resume: tell the QKD emulator to stop or restart delivering
 * key blocks on one link (to watch the KMs run their pools down). */
#include "cli.h"

#include "qkdn_err.h"

#include <stdio.h>

int
cli_link(const struct cli_cmd *cmd, struct cli_args *a)
{
	struct qkdn_msg req = {.type = QKDN_LINK_CTL}, rsp;
	const char *action =
	    cmd->action == QKDN_LINK_PAUSE ? "pause" : "resume";
	char url[QKDN_NET_URL_MAX];
	int rv;
	if (qkdn_name_set(req.u.link_ctl.link, a->arg[0]) != 0)
		return cli_usage(cmd, "LINK must be 1..%d bytes",
		                 QKDN_NAME_MAX - 1);
	req.u.link_ctl.action = (uint32_t)cmd->action;
	if ((rv = cli_sim_url(cmd, a, url, sizeof(url))) != 0 ||
	    (rv = cli_call(a, url, &req, &rsp, QKDN_ACK)) != 0)
		return rv;
	int result = rsp.u.ack.result;
	qkdn_msg_clear(&rsp);
	if (result != 0) {
		/* a qkdn code, whichever sign the emulator sent it with */
		int code = result > 0 ? -result : result;
		return cli_fail(a, NULL, code, "the emulator refused to %s %s",
		                action, a->arg[0]);
	}
	if (!a->json) {
		printf("ok\n");
		return CLI_OK;
	}
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddBoolToObject(doc, "ok", 1);
	cJSON_AddStringToObject(doc, "link", a->arg[0]);
	cJSON_AddStringToObject(doc, "action", action);
	return cli_emit(a, doc);
}
