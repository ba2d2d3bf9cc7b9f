from django.urls import path

from .api import AnnotationsAPI

urlpatterns = [path("annotations", AnnotationsAPI.as_view(), name="api-annotations")]
