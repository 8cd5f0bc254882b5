"""The bot's wording, per language: short, warm, one question, GSM-7 where possible.

Every text names the spa. None repeats health details: a reply may name the treatment
the patient asked for, never a symptom or a medical question.
"""

from __future__ import annotations

from ringback.conversation.machine import Language

TEMPLATES: dict[Language, dict[str, str]] = {
    "en": {
        "ask_treatment": "{location}: Happy to help! Which treatment are you interested in?",
        "ask_time": "{location}: {price}Great{name}, {treatment} it is! What day and time work best?",
        "ask_patient": "{location}: {price}Got it! Have you visited us before, or is this your first time?",
        "booking_link": "{location}: {price}Perfect! Book your {treatment} here: {booking_link}",
        "handoff_person": "{location}: Of course! Someone from our team will reach out shortly.",
        "handoff_medical": (
            "{location}: Good question for our providers. One of them will get back to you shortly."
        ),
        "handoff_pricing": "{location}: Our front desk will text you with pricing details shortly.",
        "handoff_consult": (
            "{location}: Lovely! Our team will reach out shortly to set up your consultation."
        ),
        "handoff_appointment": "{location}: No problem, our front desk will help you with that shortly.",
        "handoff_booking": "{location}: Perfect! Our front desk will text you shortly to confirm a time.",
        "handoff_generic": "{location}: Thanks! Someone from our team will text you shortly.",
        "urgent": (
            "{location}: If this is an emergency, call 911 now. Otherwise please call us at "
            "{phone}. We've alerted our team."
        ),
        "wrong_number": "{location}: Sorry for the mix-up! We won't text this number again.",
        "nudge": (
            "{location}: Just checking in - we'd love to help you book. "
            "What treatment were you calling about?"
        ),
        "offer_slots": "{location}: {price}We have {treatment}: {slots}. Reply {choices}.",
        "offer_more": (
            "{location}: How about {slots}? Reply {choices}, or see every time: {booking_link}"
        ),
        "offer_again": "{location}: Which time works: {slots}? Reply {choices}.",
        "slot_taken": (
            "{location}: So sorry, that time was just taken! We can do {slots}. Reply {choices}."
        ),
        "no_slots_link": (
            "{location}: {price}We're booked up near then. See every open time for "
            "{treatment} here: {booking_link}"
        ),
        "booked": (
            "{location}: You're booked{name}! {treatment} on {when} with {provider}. {address}{prep}"
            "Reply C to confirm, R to reschedule or X to cancel."
        ),
        "rescheduled": (
            "{location}: Done! You're now booked for {treatment} on {when} with {provider}. "
            "{address}"
        ),
        "appointment_confirmed": "{location}: Thank you{name}, you're confirmed for {when}. See you then!",
        "appointment_cancelled": (
            "{location}: Your appointment on {when} is cancelled. Text us any time to book again."
        ),
        "ask_reschedule_time": "{location}: No problem! What day and time would work better?",
        "clarify_treatment": "{location}: Which treatment would you like? Reply {menu}.",
        "unsure_treatment": "{location}: No problem! Reply {menu}.",
        "clarify_time": (
            "{location}: Which day and time suit you? Reply 1 for our first opening, "
            "or send a day and time (e.g. Tue afternoon)."
        ),
        "clarify_patient": "{location}: Is this your first visit? Reply 1 if it's your first, or 2 if you've been before.",
        "handoff_choose": "{location}: No problem! Someone from our team will text you shortly to help you choose.",
        "ack_link": "{location}: Anytime! Book your {treatment} whenever you're ready: {booking_link}",
        "ack_offers": "{location}: You're welcome! Just reply {choices} to book one of those times.",
        "ack_appointment": "{location}: You're welcome{name}! See you {when}.",
        "confirm_cancel": (
            "{location}: Cancel your {treatment} on {when}? Reply X again to cancel, "
            "or R to pick another time."
        ),
        "appointment_kept": "{location}: No problem, you're still booked for {when}. See you then!",
        "appointment_choices": (
            "{location}: About your visit on {when}: reply C to confirm, R to reschedule or "
            "X to cancel. For anything else, our team will help."
        ),
        "running_late": (
            "{location}: Thanks for letting us know{name}! We've told the team. See you soon."
        ),
        # After a no-show: warm, no blame, no treatment named (a lock screen shows it).
        "no_show_offer": (
            "{location}: We missed you today{name}! Want another time? We have {slots}. "
            "Reply {choices}."
        ),
        "no_show": (
            "{location}: We missed you today{name}! Want to pick another time? "
            "Just reply with a day and time that suits you."
        ),
        # Waitlist (GSM-7 only: no curly quotes or accents in the English wording).
        "offer_waitlist": (
            "{location}: Sorry, nothing is open for {treatment} then. Want us to add you to "
            "our waitlist and text you when a time opens? Reply YES or NO."
        ),
        "waitlisted": (
            "{location}: You're on the waitlist{name}! We'll text you as soon as a time opens."
        ),
        "waitlist_offer": (
            "{location}: Good news{name}, a time just opened: {slots}. Reply YES to book it. "
            "First reply gets it."
        ),
        "waitlist_taken": (
            "{location}: So sorry, someone just took that time. You're still on our "
            "waitlist and we'll text you when another opens."
        ),
        "waitlist_declined": (
            "{location}: No problem! You're still on our waitlist for the next opening."
        ),
        "rebook": (
            "{location}: Hi{name}! It's about time for your next visit. We have {slots}. "
            "Reply {choices}."
        ),
        "review": (
            "{location}: Thanks for visiting us{name}! Would you leave us a quick review? "
            "{review_link}"
        ),
        # "urgent" with no number to call: after hours, and no on-call line configured.
        "urgent_callback": (
            "{location}: If this is an emergency, call 911 now. We've alerted our team and "
            "a nurse will call you back as soon as possible."
        ),
    },
    "es": {
        "ask_treatment": "{location}: ¡Con gusto! ¿Qué tratamiento le interesa?",
        "ask_time": "{location}: {price}¡Perfecto{name}, {treatment}! ¿Qué día y hora le quedan mejor?",
        "ask_patient": "{location}: {price}¡Listo! ¿Ya nos ha visitado o es su primera vez?",
        "booking_link": "{location}: {price}¡Perfecto! Reserve su {treatment} aquí: {booking_link}",
        "handoff_person": "{location}: ¡Claro! Alguien de nuestro equipo le contactará pronto.",
        "handoff_medical": (
            "{location}: Buena pregunta para nuestros especialistas. Le responderán pronto."
        ),
        "handoff_pricing": "{location}: Recepción le enviará los precios en breve.",
        "handoff_consult": "{location}: ¡Qué bien! Le contactaremos pronto para su consulta.",
        "handoff_appointment": "{location}: Sin problema, recepción le ayudará en breve.",
        "handoff_booking": "{location}: ¡Perfecto! Recepción le escribirá pronto para confirmar.",
        "handoff_generic": "{location}: ¡Gracias! Alguien de nuestro equipo le escribirá pronto.",
        "urgent": (
            "{location}: Si es una emergencia, llame al 911 ahora. Si no, llámenos al {phone}. "
            "Ya avisamos a nuestro equipo."
        ),
        "wrong_number": "{location}: ¡Disculpe la confusión! No volveremos a escribir a este número.",
        "nudge": (
            "{location}: Solo para saber si podemos ayudarle a reservar. "
            "¿Sobre qué tratamiento llamaba?"
        ),
        "offer_slots": "{location}: {price}Tenemos {treatment}: {slots}. Responda {choices}.",
        "offer_more": (
            "{location}: ¿Qué tal {slots}? Responda {choices}, o vea todos los horarios: "
            "{booking_link}"
        ),
        "offer_again": "{location}: ¿Qué horario le queda: {slots}? Responda {choices}.",
        "slot_taken": (
            "{location}: ¡Lo sentimos, ese horario se acaba de ocupar! Podemos {slots}. "
            "Responda {choices}."
        ),
        "no_slots_link": (
            "{location}: {price}No hay espacio cerca de esa hora. Vea los horarios de "
            "{treatment} aquí: {booking_link}"
        ),
        "booked": (
            "{location}: ¡Listo{name}! {treatment} el {when} con {provider}. {address}{prep}"
            "Responda C para confirmar, R para cambiar o X para cancelar."
        ),
        "rescheduled": (
            "{location}: ¡Hecho! Su nueva cita de {treatment} es el {when} con {provider}. "
            "{address}"
        ),
        "appointment_confirmed": "{location}: ¡Gracias{name}! Su cita del {when} está confirmada.",
        "appointment_cancelled": (
            "{location}: Su cita del {when} está cancelada. Escríbanos cuando quiera reservar."
        ),
        "ask_reschedule_time": "{location}: ¡Claro! ¿Qué día y hora le quedan mejor?",
        "clarify_treatment": "{location}: ¿Qué tratamiento le gustaría? Responda {menu}.",
        "unsure_treatment": "{location}: ¡Sin problema! Responda {menu}.",
        "clarify_time": (
            "{location}: ¿Qué día y hora le quedan? Responda 1 para el primer horario "
            "libre, o envíe un día y hora (p. ej. martes en la tarde)."
        ),
        "clarify_patient": "{location}: ¿Es su primera visita? Responda 1 si es la primera, o 2 si ya nos ha visitado.",
        "handoff_choose": "{location}: ¡Sin problema! Alguien de nuestro equipo le escribirá pronto para ayudarle a elegir.",
        "ack_link": "{location}: ¡Con gusto! Reserve su {treatment} cuando quiera: {booking_link}",
        "ack_offers": "{location}: ¡De nada! Responda {choices} para reservar uno de esos horarios.",
        "ack_appointment": "{location}: ¡De nada{name}! Nos vemos el {when}.",
        "confirm_cancel": (
            "{location}: ¿Cancelar su cita de {treatment} el {when}? Responda X otra vez "
            "para cancelar, o R para elegir otro horario."
        ),
        "appointment_kept": "{location}: Sin problema, su cita del {when} sigue en pie. ¡Nos vemos!",
        "appointment_choices": (
            "{location}: Sobre su cita del {when}: responda C para confirmar, R para cambiar "
            "o X para cancelar. Para otra cosa, nuestro equipo le ayudará."
        ),
        "running_late": (
            "{location}: ¡Gracias por avisar{name}! Ya le dijimos al equipo. Nos vemos pronto."
        ),
        "no_show_offer": (
            "{location}: ¡Le extrañamos hoy{name}! ¿Quiere otro horario? Tenemos {slots}. "
            "Responda {choices}."
        ),
        "no_show": (
            "{location}: ¡Le extrañamos hoy{name}! ¿Quiere elegir otro horario? "
            "Responda con un día y hora que le queden bien."
        ),
        "offer_waitlist": (
            "{location}: Lo sentimos, no hay horario para {treatment}. ¿Le ponemos en la "
            "lista de espera y le avisamos? Responda SI o NO."
        ),
        "waitlisted": (
            "{location}: ¡Ya está en la lista de espera{name}! Le avisaremos en cuanto se "
            "abra un horario."
        ),
        "waitlist_offer": (
            "{location}: ¡Buenas noticias{name}, se abrió un horario: {slots}. Responda SI "
            "para reservarlo. La primera respuesta lo obtiene."
        ),
        "waitlist_taken": (
            "{location}: Lo sentimos, alguien acaba de tomar ese horario. Sigue en la lista "
            "de espera y le avisaremos cuando se abra otro."
        ),
        "waitlist_declined": (
            "{location}: ¡Sin problema! Sigue en la lista de espera para el próximo horario."
        ),
        "rebook": (
            "{location}: ¡Hola{name}! Ya es hora de su próxima visita. Tenemos {slots}. "
            "Responda {choices}."
        ),
        "review": (
            "{location}: ¡Gracias por visitarnos{name}! ¿Nos deja una reseña rápida? {review_link}"
        ),
        "urgent_callback": (
            "{location}: Si es una emergencia, llame al 911 ahora. Ya avisamos a nuestro "
            "equipo y una enfermera le llamará lo antes posible."
        ),
    },
}

STAFF_ALERT = "Ringback: {what} from {phone} at {location}. Call back or open: {link}"


def render(template: str, language: Language, values: dict[str, str]) -> str:
    """Fill ``template`` in ``language`` (English when a language lacks it). ``name`` is the
    patient's first name when staff or an import gave one (", Maria"), else nothing."""
    text = TEMPLATES.get(language, {}).get(template) or TEMPLATES["en"][template]
    price = values.get("price", "")
    filled = dict(values, price=f"{price} " if price else "")
    return " ".join(text.format_map(_Missing(filled)).split())


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
