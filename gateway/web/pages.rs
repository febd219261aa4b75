//! The HTML of every page, rendered on the server with `maud` (which escapes everything it
//! interpolates). Layout and wording follow the GOV.UK Design System's patterns: one
//! question per form, labels on every field, an error summary that takes focus.

use maud::{DOCTYPE, Markup, html};

use super::Web;
use super::guard::SignedIn;
use crate::accounts::Role;

/// The frame of every page: skip link, masthead (with sign-out when signed in), main; `head`
/// adds to the document's head (a script, its metadata).
pub(super) fn layout(
    title: &str,
    who: Option<(&SignedIn, &str)>,
    head: Markup,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " – Secure data gateway" }
                link rel="stylesheet" href="/assets/app.css";
                @if let Some((_, csrf)) = who {
                    meta name="csrf-token" content=(csrf);
                }
                (head)
            }
            body {
                a.skip-link href="#main" { "Skip to main content" }
                header.masthead {
                    div.wrap {
                        span.service { "Secure data gateway" }
                        @if let Some((w, csrf)) = who {
                            nav aria-label="Account" {
                                @if w.user.role != Role::Uploader {
                                    a href="/console" { "Console" }
                                }
                                span.who { "Signed in as " strong { (w.user.name) } }
                                a href="/account" { "Your account" }
                                form.inline method="post" action="/sign-out" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.link-button type="submit" { "Sign out" }
                                }
                            }
                        }
                    }
                }
                main #main .wrap tabindex="-1" { (body) }
            }
        }
    }
}

/// An error summary that a screen reader announces and the keyboard lands on.
pub(super) fn error_summary(error: &str) -> Markup {
    html! {
        div.error-summary role="alert" tabindex="-1" #error-summary {
            h2 { "There is a problem" }
            p { (error) }
        }
    }
}

/// The field for an authenticator app's code, with `hint` under its label.
fn code_field(hint: &str) -> Markup {
    html! {
        div.field {
            label for="code" { "Security code" }
            p.hint #code-hint { (hint) }
            input #code .short type="text" name="code" inputmode="numeric" pattern="[0-9 ]*"
                autocomplete="one-time-code" aria-describedby="code-hint";
        }
    }
}

/// What the sign-in page shows.
pub struct SignInForm<'a> {
    /// Why the last attempt failed.
    pub error: Option<&'a str>,
    /// The name typed before.
    pub name: &'a str,
    /// The form token.
    pub csrf: &'a str,
    /// The connection presented a client certificate: offer to sign in with it.
    pub certificate: bool,
}

/// `GET /sign-in`
pub fn sign_in(f: &SignInForm<'_>) -> Markup {
    let body = html! {
        @if let Some(e) = f.error { (error_summary(e)) }
        h1 { "Sign in" }
        form method="post" action="/sign-in" novalidate {
            input type="hidden" name="csrf" value=(f.csrf);
            div.field {
                label for="name" { "Account name" }
                input #name type="text" name="name" value=(f.name) autocomplete="username"
                    spellcheck="false" autocapitalize="none" required;
            }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            (code_field("The 6-digit code from your authenticator app, if your account has one."))
            button.button type="submit" { "Sign in" }
        }
        @if f.certificate {
            h2 { "Or use your certificate" }
            form method="post" action="/sign-in/certificate" {
                input type="hidden" name="csrf" value=(f.csrf);
                button.button.secondary type="submit" { "Sign in with my certificate" }
            }
        }
    };
    layout("Sign in", None, html! {}, body)
}

/// `GET /`: the upload page.
pub fn upload(who: &SignedIn, web: &Web) -> Markup {
    let csrf = who.csrf(web);
    let agency = who.user.agency.as_deref().unwrap_or_default();
    let body = html! {
        h1 { "Send files to the hub" }
        p.lead { "You are sending for " strong { (agency) } "." }
        noscript {
            div.error-summary {
                p { "This page needs JavaScript to send files and seal them in your browser. With scripts off, use the command-line tools (gateway seal, gateway send)." }
            }
        }
        form #upload-form {
            div.field {
                label for="files" { "Files to send" }
                p.hint #files-hint { "Plain XML files are sealed here with your key; sealed files (.sealed) are sent as they are. Choose one or more, or drop them here." }
                div.drop-zone #drop-zone {
                    input #files type="file" name="files" multiple aria-describedby="files-hint";
                }
            }
            fieldset.field #signing {
                legend { "Your signing key, for plain XML files" }
                p.hint { "A plain XML file is signed and encrypted in this page before it is sent. Your key is read here and never leaves this page." }
                div.field {
                    label for="key-file" { "Key file (.p12, or PEM)" }
                    input #key-file type="file" name="key";
                }
                div.field {
                    label for="cert-file" { "Certificate file (PEM; not needed with a .p12 file)" }
                    input #cert-file type="file" name="cert";
                }
                div.field {
                    label for="key-password" { "Password of the .p12 file" }
                    input #key-password type="password" name="key-password" autocomplete="off";
                }
            }
            div.field.checkbox {
                input #check-only type="checkbox" name="check";
                label for="check-only" { "Check only: run every check, send nothing to the hub" }
            }
            button.button #send type="submit" { "Send" }
        }
        section aria-labelledby="results-title" {
            h2 #results-title { "Results" }
            p.hint #results-empty { "Nothing sent yet." }
            ol.results #results aria-live="polite" {}
        }
    };
    let receipt_sha256 = web
        .app
        .gateway
        .forwarding
        .as_ref()
        .map(|fw| fw.receipts.certificate_sha256())
        .unwrap_or_default();
    let head = html! {
        meta name="receipt-certificate-sha256" content=(receipt_sha256);
        script type="module" src="/assets/upload.js" {}
    };
    layout("Send files", Some((who, &csrf)), head, body)
}

/// What the account page shows besides the account.
#[derive(Default)]
pub struct AccountView<'a> {
    /// Why the last request failed.
    pub error: Option<&'a str>,
    /// The new password, shown this once.
    pub new_password: Option<&'a str>,
}

/// `GET /account`: who the person is, and a new password when they ask.
pub fn account(who: &SignedIn, web: &Web, view: &AccountView<'_>) -> Markup {
    let csrf = who.csrf(web);
    let u = &who.user;
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let body = html! {
        @if let Some(e) = view.error { (error_summary(e)) }
        @if let Some(p) = view.new_password {
            div.notice.secret role="status" {
                p { strong { "Your new password, shown this once:" } }
                p.break { code #new-password { (p) } }
                p { "Keep it in your password manager now. Your other sessions have ended; this one goes on." }
            }
        }
        h1 { "Your account" }
        dl.facts {
            dt { "Account name" } dd { (u.name) }
            dt { "Role" } dd { (u.role.as_str()) }
            @if let Some(a) = &u.agency { dt { "Agency" } dd { (a) } }
            dt { "Security code at sign-in" } dd { (yes_no(u.totp.is_some())) }
            dt { "Certificate sign-in" } dd { (yes_no(u.client_certificate.is_some())) }
        }
        h2 { "Get a new password" }
        p { "The gateway chooses the new password (long and random) and shows it once. Whoever gave you your first password will no longer know the one you use." }
        form method="post" action="/account/password" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            div.field {
                label for="password" { "Your current password" }
                input #password type="password" name="password" autocomplete="current-password" required;
            }
            @if u.totp.is_some() {
                (code_field("The 6-digit code from your authenticator app. A code counts once: if it is the one you signed in with, wait for the next."))
            }
            button.button type="submit" { "Get a new password" }
        }
    };
    layout("Your account", Some((who, &csrf)), html! {}, body)
}

/// 403 for a page the person's role does not open.
pub fn forbidden(who: &SignedIn, web: &Web) -> Markup {
    let csrf = who.csrf(web);
    let body = html! {
        h1 { "You cannot open this page" }
        p { "Your account (" (who.user.role.as_str()) ") does not give access to it. "
            a href="/" { "Go to your start page" } "." }
    };
    layout("Not allowed", Some((who, &csrf)), html! {}, body)
}

/// 403 for a form that came from elsewhere or without its token.
pub fn refused(why: &str) -> Markup {
    let body = html! {
        (error_summary(why))
        h1 { "The request was refused" }
        p { a href="/" { "Go back to your start page" } " and try again." }
    };
    layout("Refused", None, html! {}, body)
}
