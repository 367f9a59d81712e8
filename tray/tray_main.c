/*
 * tray_main.c - ukeyd-tray, the tray indicator: an Ayatana AppIndicator (StatusNotifierItem) whose
 * icon says whether the key's certificate is valid, expiring, expired or not valid yet, whose menu
 * lists each key with its certificates (name, organisation, dates, days left) and offers "Open
 * the renewal page", "Run check" and "Quit", and desktop notifications (libnotify) for the
 * reminders tray_state.c decides.
 *
 * It talks to ukeyd only over the Unix socket (tray_conn.c), subscribes to ukeyd's events and
 * re-reads token.list / cert.list / renewal.list when one arrives; the only timer is the one for
 * the next moment a day count or a status changes (tray_state.c: uk_tray_next_wakeup), plus the
 * reconnection backoff while ukeyd is down.
 *
 *   ukeyd-tray [--socket PATH | --config FILE] [--tray-config FILE] [--state-file FILE]
 *              [--show-menu [--screenshot FILE]] [--verbose]
 *
 * --show-menu (for screenshots and for desktops without a StatusNotifierWatcher) shows the icon
 * and the very same menu in a plain window instead of the indicator; --screenshot FILE then
 * writes a PNG of the screen once the state is settled and exits. --verbose prints "state NAME"
 * whenever the state changes and "notify SUMMARY | BODY" for each notification on stdout.
 */
#include "tray_conn.h"
#include "tray_state.h"

#include "uk_config.h"
#include "uk_err.h"

#include <errno.h>
#include <gtk/gtk.h>
#include <libayatana-appindicator/app-indicator.h>
#include <libintl.h>
#include <libnotify/notify.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define _(s) dgettext(UK_TRAY_DOMAIN, s)

/* Time the window needs to draw after the state settled, before a screenshot. */
#define SCREENSHOT_DELAY_MS 700

typedef struct tray {
    uk_tray_conn *conn;
    uk_tray_model model;
    uk_tray_config cfg;
    uk_tray_store store;
    char *state_path;
    char *socket_path;
    /* refresh: requests in flight, and whether another refresh was asked for meanwhile */
    unsigned inflight;
    bool again;
    bool refreshing;
    GPtrArray *inserted_ids; /* token.inserted since the last token.list */
    guint wake_source;
    /* ui */
    AppIndicator *indicator;
    GtkWidget *menu;
    GtkWidget *window; /* --show-menu */
    GtkWidget *window_icon, *window_label;
    bool verbose;
    const char *screenshot;
    bool settled_once;
    uk_tray_state last_state;
    bool have_state;
    bool notify_ok;
    int exit_status; /* 1 when the screenshot could not be written */
} tray;

static void refresh(tray *t);

/* ---- i18n ---- */

/* gettext needs a locale that exists; a Chinese LANG on a system without the zh_CN locale
 * generated still gets Chinese: C.UTF-8 with LANGUAGE set (glibc honours LANGUAGE then). */
static void init_i18n(void)
{
    const char *lang = getenv("LC_ALL");
    if (lang == NULL || lang[0] == '\0')
        lang = getenv("LC_MESSAGES");
    if (lang == NULL || lang[0] == '\0')
        lang = getenv("LANG");
    if (setlocale(LC_ALL, "") == NULL) {
        setlocale(LC_ALL, "C.UTF-8");
        if (lang != NULL && strncmp(lang, "zh", 2) == 0 && getenv("LANGUAGE") == NULL) {
            char l[16];
            snprintf(l, sizeof l, "%.5s", lang);
            setenv("LANGUAGE", l, 1);
        }
    }
    /* The catalogues next to the program when there are any (the build tree keeps them in
     * locale/ beside the executable), else the installed ones; no build path is compiled in. */
    char exe[4096], local[4096 + 8];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    const char *dir = UK_TRAY_LOCALEDIR;
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(local, sizeof local, "%s/locale", exe);
            if (g_file_test(local, G_FILE_TEST_IS_DIR))
                dir = local;
        }
    }
    const char *override = getenv("UKEYD_TRAY_LOCALEDIR");
    bindtextdomain(UK_TRAY_DOMAIN, override != NULL ? override : dir);
    bind_textdomain_codeset(UK_TRAY_DOMAIN, "UTF-8");
}

/* ---- actions ---- */

static void open_renewal_page(GtkMenuItem *item, gpointer data)
{
    tray *t = data;
    (void)item;
    GError *err = NULL;
    if (t->cfg.renewal_url[0] != '\0' &&
        !g_app_info_launch_default_for_uri(t->cfg.renewal_url, NULL, &err)) {
        g_printerr("ukeyd-tray: cannot open %s: %s\n", t->cfg.renewal_url, err->message);
        g_error_free(err);
    }
}

/* ukeyctl next to this program (build tree, /usr/bin), else from PATH. */
static char *ukeyctl_path(void)
{
    const char *env = getenv("UKEYCTL");
    if (env != NULL && env[0] == '/')
        return g_strdup(env);
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *dir = g_path_get_dirname(exe);
        char *p = g_build_filename(dir, "ukeyctl", NULL);
        g_free(dir);
        if (g_file_test(p, G_FILE_TEST_IS_EXECUTABLE))
            return p;
        g_free(p);
    }
    char *p = g_find_program_in_path("ukeyctl");
    return p != NULL ? p : g_strdup("ukeyctl");
}

static void doctor_done(GObject *src, GAsyncResult *res, gpointer data)
{
    (void)data;
    char *out = NULL;
    GError *err = NULL;
    if (!g_subprocess_communicate_utf8_finish(G_SUBPROCESS(src), res, &out, NULL, &err)) {
        out = g_strdup(err->message);
        g_error_free(err);
    }
    GtkWidget *dlg = gtk_dialog_new_with_buttons(_("ukeyd check"), NULL, 0, _("_Close"),
                                                 GTK_RESPONSE_CLOSE, NULL);
    GtkWidget *scroll = gtk_scrolled_window_new(NULL, NULL);
    GtkWidget *view = gtk_text_view_new();
    gtk_text_view_set_editable(GTK_TEXT_VIEW(view), FALSE);
    gtk_text_view_set_monospace(GTK_TEXT_VIEW(view), TRUE);
    gtk_text_view_set_wrap_mode(GTK_TEXT_VIEW(view), GTK_WRAP_WORD_CHAR);
    gtk_text_buffer_set_text(gtk_text_view_get_buffer(GTK_TEXT_VIEW(view)), out ? out : "", -1);
    gtk_container_add(GTK_CONTAINER(scroll), view);
    gtk_widget_set_size_request(scroll, 720, 420);
    gtk_box_pack_start(GTK_BOX(gtk_dialog_get_content_area(GTK_DIALOG(dlg))), scroll, TRUE, TRUE,
                       0);
    g_signal_connect(dlg, "response", G_CALLBACK(gtk_widget_destroy), NULL);
    gtk_widget_show_all(dlg);
    g_free(out);
}

static void run_check(GtkMenuItem *item, gpointer data)
{
    tray *t = data;
    (void)item;
    char *ctl = ukeyctl_path();
    GError *err = NULL;
    GSubprocess *p =
        g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE, &err,
                         ctl, "--socket", t->socket_path, "doctor", NULL);
    g_free(ctl);
    if (p == NULL) {
        g_printerr("ukeyd-tray: cannot run ukeyctl doctor: %s\n", err->message);
        g_error_free(err);
        return;
    }
    g_subprocess_communicate_utf8_async(p, NULL, NULL, doctor_done, t);
    g_object_unref(p);
}

static void quit(GtkMenuItem *item, gpointer data)
{
    (void)item;
    (void)data;
    gtk_main_quit();
}

/* ---- showing the state ---- */

static void rebuild_menu(tray *t, time_t now)
{
    GList *children = gtk_container_get_children(GTK_CONTAINER(t->menu));
    for (GList *l = children; l != NULL; l = l->next)
        gtk_widget_destroy(GTK_WIDGET(l->data));
    g_list_free(children);
    uk_tray_item *items = g_new0(uk_tray_item, UK_TRAY_MAX_ITEMS);
    size_t n = uk_tray_menu_build(&t->model, now, t->cfg.renewal_url[0] != '\0', items);
    for (size_t i = 0; i < n; i++) {
        const uk_tray_item *it = &items[i];
        GtkWidget *w;
        if (it->kind == UK_TRAY_ITEM_SEPARATOR) {
            w = gtk_separator_menu_item_new();
        } else {
            char *text = g_strdup_printf("%s%s", it->indent ? "    " : "", it->text);
            w = gtk_menu_item_new_with_label(text);
            g_free(text);
            if (it->kind == UK_TRAY_ITEM_KEY) {
                GtkWidget *label = gtk_bin_get_child(GTK_BIN(w));
                char *markup = g_markup_printf_escaped("<b>%s</b>", it->text);
                gtk_label_set_markup(GTK_LABEL(label), markup);
                g_free(markup);
            }
            gtk_widget_set_sensitive(w, it->kind == UK_TRAY_ITEM_ACTION ? it->sensitive : FALSE);
            if (it->action == UK_TRAY_ACTION_RENEW)
                g_signal_connect(w, "activate", G_CALLBACK(open_renewal_page), t);
            else if (it->action == UK_TRAY_ACTION_DOCTOR)
                g_signal_connect(w, "activate", G_CALLBACK(run_check), t);
            else if (it->action == UK_TRAY_ACTION_QUIT)
                g_signal_connect(w, "activate", G_CALLBACK(quit), t);
        }
        gtk_menu_shell_append(GTK_MENU_SHELL(t->menu), w);
    }
    g_free(items);
    gtk_widget_show_all(t->menu);
}

static void notify(tray *t, const uk_tray_note *note, uk_tray_state state)
{
    if (t->verbose) {
        printf("notify %s | %s\n", note->summary, note->body);
        fflush(stdout);
    }
    if (!t->notify_ok)
        return;
    NotifyNotification *n =
        notify_notification_new(note->summary, note->body, uk_tray_state_icon(state));
    notify_notification_set_urgency(
        n, note->kind == UK_TRAY_NOTE_NOW_VALID ? NOTIFY_URGENCY_NORMAL : NOTIFY_URGENCY_CRITICAL);
    GError *err = NULL;
    if (!notify_notification_show(n, &err)) {
        g_printerr("ukeyd-tray: notification not shown: %s\n", err ? err->message : "?");
        g_clear_error(&err);
    }
    g_object_unref(n);
}

static gboolean wake(gpointer data);

static gboolean take_screenshot(gpointer data)
{
    tray *t = data;
    GdkWindow *root = gdk_get_default_root_window();
    int w = gdk_window_get_width(root), h = gdk_window_get_height(root);
    /* The window and the open menu, with a margin: the rest of the screen is empty. */
    int right = 0, bottom = 0;
    GtkWidget *tops[] = {t->window, gtk_widget_get_toplevel(t->menu)};
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        GdkWindow *gw = tops[i] != NULL ? gtk_widget_get_window(tops[i]) : NULL;
        if (gw == NULL || !gdk_window_is_visible(gw))
            continue;
        int x, y;
        gdk_window_get_origin(gw, &x, &y);
        right = MAX(right, x + gdk_window_get_width(gw) + 8);
        bottom = MAX(bottom, y + gdk_window_get_height(gw) + 8);
    }
    if (right > 0 && bottom > 0) {
        w = MIN(w, right);
        h = MIN(h, bottom);
    }
    GdkPixbuf *pb = gdk_pixbuf_get_from_window(root, 0, 0, w, h);
    GError *err = NULL;
    if (pb == NULL || !gdk_pixbuf_save(pb, t->screenshot, "png", &err, NULL)) {
        g_printerr("ukeyd-tray: screenshot failed: %s\n", err ? err->message : "no image");
        g_clear_error(&err);
        t->exit_status = 1;
    } else {
        printf("screenshot %s\n", t->screenshot);
        fflush(stdout);
    }
    if (pb != NULL)
        g_object_unref(pb);
    gtk_main_quit();
    return G_SOURCE_REMOVE;
}

/* Everything the state decides: icon, menu, tooltip, notifications, the next wake-up. */
static void apply(tray *t)
{
    time_t now = time(NULL);
    uk_tray_state st = uk_tray_model_state(&t->model, now);
    char summary[512];
    uk_tray_model_summary(&t->model, now, summary, sizeof summary);
    rebuild_menu(t, now);
    if (t->indicator != NULL) {
        app_indicator_set_icon_full(t->indicator, uk_tray_state_icon(st), summary);
        app_indicator_set_title(t->indicator, summary);
    }
    if (t->window != NULL) {
        gtk_image_set_from_icon_name(GTK_IMAGE(t->window_icon), uk_tray_state_icon(st),
                                     GTK_ICON_SIZE_DIALOG);
        gtk_label_set_text(GTK_LABEL(t->window_label), summary);
    }
    uk_tray_note notes[UK_TRAY_MAX_NOTES];
    size_t n = uk_tray_reminders_due(&t->model, &t->store, t->cfg.reminder_days,
                                     t->cfg.n_reminder_days, now, notes);
    for (size_t i = 0; i < n; i++)
        notify(t, &notes[i], st);
    if (t->store.dirty && uk_tray_store_save(&t->store, t->state_path) != 0)
        g_printerr("ukeyd-tray: cannot save %s: %s\n", t->state_path, g_strerror(errno));
    if (t->wake_source != 0)
        g_source_remove(t->wake_source);
    t->wake_source = 0;
    if (t->model.daemon_up) {
        time_t next = uk_tray_next_wakeup(&t->model, now);
        t->wake_source = g_timeout_add_seconds((guint)(next - now), wake, t);
    }
    if (!t->have_state || st != t->last_state) {
        t->have_state = true;
        t->last_state = st;
        if (t->verbose) {
            printf("state %s\n", uk_tray_state_name(st));
            fflush(stdout);
        }
    }
    if (t->screenshot != NULL && !t->settled_once) {
        t->settled_once = true;
        g_timeout_add(SCREENSHOT_DELAY_MS, take_screenshot, t);
    }
}

static gboolean wake(gpointer data)
{
    tray *t = data;
    t->wake_source = 0;
    refresh(t);
    return G_SOURCE_REMOVE;
}

/* ---- reading the state from ukeyd ---- */

struct certs_req {
    tray *t;
    char id[128];
};

static void request_done(tray *t)
{
    if (--t->inflight > 0)
        return;
    t->refreshing = false;
    if (t->again) {
        t->again = false;
        refresh(t);
        return;
    }
    apply(t);
}

static void certs_reply(const cJSON *result, const char *reason, void *arg)
{
    struct certs_req *r = arg;
    tray *t = r->t;
    if (uk_tray_model_set_certs(&t->model, r->id, result, reason) != 0 && result != NULL)
        g_printerr("ukeyd-tray: unexpected cert.list answer\n");
    g_free(r);
    request_done(t);
}

static void tokens_reply(const cJSON *result, const char *reason, void *arg)
{
    tray *t = arg;
    if (result != NULL || (reason != NULL && strcmp(reason, "DAEMON_UNAVAILABLE") != 0)) {
        if (uk_tray_model_set_tokens(&t->model, result, reason) != 0)
            g_printerr("ukeyd-tray: unexpected token.list answer\n");
        for (guint i = 0; i < t->inserted_ids->len; i++)
            uk_tray_model_mark_inserted(&t->model, g_ptr_array_index(t->inserted_ids, i));
        g_ptr_array_set_size(t->inserted_ids, 0);
        for (size_t i = 0; i < t->model.n_tokens; i++) {
            if (!t->model.tokens[i].present)
                continue;
            struct certs_req *r = g_new0(struct certs_req, 1);
            r->t = t;
            g_strlcpy(r->id, t->model.tokens[i].id, sizeof r->id);
            cJSON *params = cJSON_CreateObject();
            cJSON_AddStringToObject(params, "token", r->id);
            if (uk_tray_conn_call(t->conn, "cert.list", params, certs_reply, r))
                t->inflight++;
            else
                g_free(r);
        }
    }
    request_done(t);
}

static void renewals_reply(const cJSON *result, const char *reason, void *arg)
{
    tray *t = arg;
    (void)reason;
    if (result != NULL)
        uk_tray_model_set_renewals(&t->model, result);
    request_done(t);
}

static void ignore_reply(const cJSON *result, const char *reason, void *arg)
{
    (void)result;
    (void)arg;
    if (reason != NULL && strcmp(reason, "DAEMON_UNAVAILABLE") != 0)
        g_printerr("ukeyd-tray: system.subscribe failed: %s\n", reason);
}

static void refresh(tray *t)
{
    if (!uk_tray_conn_is_up(t->conn)) {
        apply(t);
        return;
    }
    if (t->refreshing) {
        t->again = true;
        return;
    }
    t->refreshing = true;
    t->inflight = 1; /* this function's own share, released below */
    if (uk_tray_conn_call(t->conn, "token.list", NULL, tokens_reply, t))
        t->inflight++;
    if (uk_tray_conn_call(t->conn, "renewal.list", NULL, renewals_reply, t))
        t->inflight++;
    request_done(t);
}

static void on_connected(void *ud)
{
    tray *t = ud;
    uk_tray_model_set_daemon(&t->model, true);
    uk_tray_conn_call(t->conn, "system.subscribe", NULL, ignore_reply, t);
    refresh(t);
}

static void on_disconnected(void *ud)
{
    tray *t = ud;
    bool was_up = t->model.daemon_up || !t->have_state;
    uk_tray_model_set_daemon(&t->model, false);
    t->refreshing = false;
    t->again = false;
    t->inflight = 0;
    if (was_up)
        apply(t);
}

static void on_event(const char *method, const cJSON *params, void *ud)
{
    tray *t = ud;
    if (strcmp(method, "token.inserted") == 0) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(params, "token"), "id");
        if (cJSON_IsString(id))
            g_ptr_array_add(t->inserted_ids, g_strdup(id->valuestring));
    }
    refresh(t);
}

/* ---- start-up ---- */

static void build_window(tray *t)
{
    t->window = gtk_window_new(GTK_WINDOW_TOPLEVEL);
    gtk_window_set_title(GTK_WINDOW(t->window), "ukeyd-tray");
    gtk_window_move(GTK_WINDOW(t->window), 0, 0);
    gtk_window_set_default_size(GTK_WINDOW(t->window), 640, 64);
    GtkWidget *box = gtk_box_new(GTK_ORIENTATION_HORIZONTAL, 12);
    gtk_container_set_border_width(GTK_CONTAINER(box), 8);
    t->window_icon = gtk_image_new_from_icon_name("dialog-error-symbolic", GTK_ICON_SIZE_DIALOG);
    t->window_label = gtk_label_new("");
    gtk_box_pack_start(GTK_BOX(box), t->window_icon, FALSE, FALSE, 0);
    gtk_box_pack_start(GTK_BOX(box), t->window_label, FALSE, FALSE, 0);
    gtk_container_add(GTK_CONTAINER(t->window), box);
    g_signal_connect(t->window, "destroy", G_CALLBACK(gtk_main_quit), NULL);
    gtk_widget_show_all(t->window);
}

static gboolean popup_menu(gpointer data)
{
    tray *t = data;
    gtk_menu_popup_at_widget(GTK_MENU(t->menu), t->window_icon, GDK_GRAVITY_SOUTH_WEST,
                             GDK_GRAVITY_NORTH_WEST, NULL);
    return G_SOURCE_REMOVE;
}

static void usage(FILE *f)
{
    fputs("usage: ukeyd-tray [--socket PATH | --config FILE] [--tray-config FILE]\n"
          "                  [--state-file FILE] [--show-menu [--screenshot FILE]] [--verbose]\n",
          f);
}

int main(int argc, char **argv)
{
    init_i18n();
    tray t = {0};
    const char *config_path = NULL, *tray_config = NULL, *state_file = NULL;
    bool show_menu = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--socket") == 0 && v) {
            t.socket_path = g_strdup(v);
            i++;
        } else if (strcmp(a, "--config") == 0 && v) {
            config_path = v;
            i++;
        } else if (strcmp(a, "--tray-config") == 0 && v) {
            tray_config = v;
            i++;
        } else if (strcmp(a, "--state-file") == 0 && v) {
            state_file = v;
            i++;
        } else if (strcmp(a, "--screenshot") == 0 && v) {
            t.screenshot = v;
            i++;
        } else if (strcmp(a, "--show-menu") == 0) {
            show_menu = true;
        } else if (strcmp(a, "--verbose") == 0) {
            t.verbose = true;
        } else if (strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (t.screenshot != NULL && !show_menu) {
        fputs("ukeyd-tray: --screenshot needs --show-menu\n", stderr);
        return 2;
    }
    if (t.socket_path == NULL) {
        uk_config *cfg = NULL;
        if (uk_config_load_layered(NULL, config_path, &cfg) != UK_OK) {
            fputs("ukeyd-tray: cannot read ukeyd's configuration\n", stderr);
            return 2;
        }
        t.socket_path = g_strdup(cfg->socket_path);
        uk_config_free(cfg);
    }
    char *tray_cfg_path =
        tray_config ? g_strdup(tray_config)
                    : g_build_filename(g_get_user_config_dir(), "ukeyd", "tray.json", NULL);
    char err[256] = "";
    if (uk_tray_config_load(&t.cfg, tray_cfg_path, err, sizeof err) != 0)
        g_printerr("ukeyd-tray: %s: %s (using the defaults)\n", tray_cfg_path, err);
    g_free(tray_cfg_path);
    t.state_path =
        state_file ? g_strdup(state_file)
                   : g_build_filename(g_get_user_state_dir(), "ukeyd", "tray-reminders.json", NULL);
    if (uk_tray_store_load(&t.store, t.state_path) != 0)
        g_printerr("ukeyd-tray: %s is damaged; starting with no reminders remembered\n",
                   t.state_path);
    uk_tray_model_init(&t.model, t.cfg.expiring_days);
    t.inserted_ids = g_ptr_array_new_with_free_func(g_free);

    gtk_disable_setlocale(); /* init_i18n chose the locale */
    if (!gtk_init_check(&argc, &argv)) {
        fputs("ukeyd-tray: cannot open the display\n", stderr);
        return 1;
    }
    t.notify_ok = notify_init("ukeyd-tray");
    t.menu = gtk_menu_new();
    if (show_menu) {
        build_window(&t);
        gtk_menu_attach_to_widget(GTK_MENU(t.menu), t.window_icon, NULL);
    } else {
        t.indicator = app_indicator_new("ukeyd-tray", uk_tray_state_icon(UK_TRAY_DAEMON_DOWN),
                                        APP_INDICATOR_CATEGORY_HARDWARE);
        app_indicator_set_status(t.indicator, APP_INDICATOR_STATUS_ACTIVE);
        app_indicator_set_menu(t.indicator, GTK_MENU(t.menu));
    }
    uk_tray_conn_callbacks cb = {
        .connected = on_connected, .disconnected = on_disconnected, .event = on_event};
    t.conn = uk_tray_conn_new(t.socket_path, &cb, &t);
    uk_tray_conn_start(t.conn);
    if (show_menu)
        g_timeout_add(200, popup_menu, &t);
    gtk_main();
    if (t.store.dirty)
        (void)uk_tray_store_save(&t.store, t.state_path);
    if (t.notify_ok)
        notify_uninit();
    return t.exit_status;
}
