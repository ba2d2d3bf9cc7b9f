"""Forms of the key management pages (and of `create_service_key`, which checks its arguments with them)."""

from datetime import timedelta

from django import forms
from django.core.validators import RegexValidator

GRACE_CHOICES = {
    "0": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


# Conform refuses every event of a service or stage with a control character (a tab, a line break), so a
# key for one could send nothing. \Z, not $: "$" also matches before a final line break.
printable = RegexValidator(
    r"[\x00-\x1f\x7f]", inverse_match=True, message="Use printable characters only (no tabs or line breaks)."
)


class KeyCreateForm(forms.Form):
    service = forms.RegexField(
        regex=r"\A[a-z0-9][a-z0-9_-]{0,99}\Z",
        max_length=100,
        error_messages={"invalid": "Use lowercase letters, digits, '-' and '_'."},
    )
    stage = forms.CharField(max_length=50, validators=[printable])
    can_forward = forms.BooleanField(required=False, label="May forward records for other services")
    label = forms.CharField(max_length=100, required=False)
    # The one-time token the page issued with this form (`views.key_list`): a double submit makes one key.
    # Optional: `create_service_key`, which checks its arguments with this form, and scripts send none.
    nonce = forms.CharField(widget=forms.HiddenInput, required=False, max_length=200)


class KeyRotateForm(forms.Form):
    grace = forms.ChoiceField(
        choices=[
            ("0", "immediately"),
            ("1h", "after 1 hour"),
            ("24h", "after 24 hours"),
            ("7d", "after 7 days"),
        ],
        initial="24h",
        label="Old key stops working",
    )

    def grace_period(self) -> timedelta:
        return GRACE_CHOICES[self.cleaned_data["grace"]]
