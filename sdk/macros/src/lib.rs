//! Procedural macros for the Verge guest SDK. Use them through `verge_sdk`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{ItemFn, ReturnType, spanned::Spanned};

/// Marks the function that handles every request of a Verge function.
///
/// The function takes one `verge_sdk::Request` and returns anything that
/// implements `verge_sdk::IntoResponse`:
///
/// ```text
/// #[verge_sdk::handler]
/// fn handle(req: verge_sdk::Request) -> verge_sdk::Response {
///     verge_sdk::Response::text(format!("hello from {}", req.path()))
/// }
/// ```
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[handler] takes no arguments")
            .to_compile_error()
            .into();
    }
    let func = syn::parse_macro_input!(item as ItemFn);
    match expand_handler(&func) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand_handler(func: &ItemFn) -> syn::Result<proc_macro2::TokenStream> {
    let sig = &func.sig;
    if let Some(asyncness) = &sig.asyncness {
        return Err(syn::Error::new(
            asyncness.span(),
            "a Verge handler is a plain `fn`: host calls block inside the guest, so no `async` is needed",
        ));
    }
    if !sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "a Verge handler cannot be generic",
        ));
    }
    if sig.inputs.len() != 1 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "a Verge handler takes exactly one argument: `req: verge_sdk::Request`",
        ));
    }
    if let ReturnType::Default = sig.output {
        return Err(syn::Error::new(
            sig.span(),
            "a Verge handler returns a response: `-> verge_sdk::Response` or any `impl IntoResponse`",
        ));
    }
    let name = &sig.ident;
    Ok(quote! {
        #func

        #[doc(hidden)]
        struct __VergeHandler;

        impl ::verge_sdk::__private::Guest for __VergeHandler {
            fn handle(
                req: ::verge_sdk::__private::WitRequest,
            ) -> ::verge_sdk::__private::WitResponse {
                ::verge_sdk::__private::run_handler(req, #name)
            }
        }

        impl ::verge_sdk::__private::DeferredGuest for __VergeHandler {
            fn run() {
                ::verge_sdk::__private::run_deferred()
            }
        }

        ::verge_sdk::__private::export!(__VergeHandler with_types_in ::verge_sdk::wit);
    })
}
